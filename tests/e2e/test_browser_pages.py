"""Every page in a real Chromium: admin and developer flows through the forms, a screenshot of each page at desktop
and phone widths (test-artifacts/screenshots/), labels and contrast checked on each."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from keystile.services import developers
from keystile.services.context import SYSTEM
from tests.conftest import missing_service
from tests.e2e.conftest import LivePortal, admin_sign_in, check_page, developer_sign_in, last_mail_link, unique
from tests.portal_helpers import approved_developer, ensure_default_portal
from tests.unit.dcr.fakes.okta import API_TOKEN, ISSUER, FakeOkta
from tests.unit.dcr.fakes.okta_spec import SPEC_DIR, load_okta_specs

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

SPEC = """openapi: 3.0.3
info: {title: Orders API, version: "1.0"}
paths:
  /orders/{orderId}:
    get:
      summary: Get an order
      parameters:
        - {name: orderId, in: path, required: true, schema: {type: string}}
      responses:
        "200":
          description: The order
          content:
            application/json:
              schema:
                type: object
                properties:
                  id: {type: string}
                  total: {type: integer, description: Cents}
  /orders:
    post:
      summary: Place an order
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [items], properties: {items: {type: array, items: {type: string}}}}
      responses:
        "201": {description: Created}
"""


async def test_admin_pages(page: Any, live_portal: LivePortal, tmp_path: Path) -> None:
    live = live_portal
    await page.goto("/admin/providers")
    assert page.url.endswith("/admin/login?next=/admin/providers")
    await check_page(page, "admin-login")
    await page.get_by_label("Admin token").fill("kpat_" + "x" * 43)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_text("unknown or revoked").wait_for()
    await check_page(page, "admin-login-error")
    await admin_sign_in(page, live)
    await check_page(page, "admin-home")

    # DCR provider: type chooser, per-type form, a bad value kept beside its field, then verify
    await page.goto("/admin/providers/new")
    await check_page(page, "admin-provider-types")
    await page.get_by_role("link", name=re.compile("RFC 7591")).click()
    name = unique("peer")
    await page.get_by_label(re.compile(r"^Name( \*)?$")).fill(name)
    await page.get_by_label("Issuer URL").fill("ftp://wrong")
    await page.get_by_label("Initial access token").fill("iat-secret-value")
    await page.get_by_role("button", name="Create provider").click()
    await page.locator(".field-error").first.wait_for()
    assert await page.get_by_label(re.compile(r"^Name( \*)?$")).input_value() == name
    assert await page.get_by_label("Initial access token").input_value() == ""  # secrets are never kept
    await check_page(page, "admin-provider-form-errors")
    await page.get_by_label("Issuer URL").fill("http://127.0.0.1:9/issuer")
    await page.get_by_role("button", name="Create provider").click()
    await page.wait_for_url(re.compile(r"/admin/providers/[0-9a-f-]{36}$"))
    await check_page(page, "admin-provider")
    await page.get_by_role("button", name="Verify").click()
    await page.get_by_role("heading", name=re.compile("Verification")).wait_for()
    assert await page.locator(".verify tbody tr").count() >= 1
    await check_page(page, "admin-provider-verify")
    await page.goto("/admin/providers")
    await check_page(page, "admin-providers")

    # strategies: an error beside the field, then a key-auth strategy
    await page.goto("/admin/strategies/new")
    await check_page(page, "admin-strategy-new")
    await page.get_by_label(re.compile(r"^Name( \*)?$")).fill(unique("oidc"))
    await page.get_by_label("Display name").fill("OAuth")
    await page.get_by_label("Credential claims").fill("")
    await page.get_by_role("button", name="Create strategy").click()
    await page.locator(".field-error").first.wait_for()
    await check_page(page, "admin-strategy-errors")
    await page.goto("/admin/strategies/new")
    strategy_name = unique("keys")
    await page.get_by_label(re.compile(r"^Name( \*)?$")).fill(strategy_name)
    await page.get_by_label("Display name").fill("API key")
    await page.get_by_label(re.compile(r"^API key( \*)?$")).check()
    await page.get_by_label("Key names").fill("apikey, x-api-key")
    await page.get_by_role("button", name="Create strategy").click()
    await page.wait_for_url(re.compile(r"/admin/strategies/[0-9a-f-]{36}$"))
    await check_page(page, "admin-strategy")
    await page.get_by_role("button", name="Verify").click()
    await page.get_by_role("heading", name=re.compile("Verification")).wait_for()
    await page.goto("/admin/strategies")
    await check_page(page, "admin-strategies")

    # product → version → spec upload → publication
    await page.goto("/admin/products")
    product = unique("Orders")
    await page.get_by_label(re.compile(r"^Name( \*)?$")).fill(product)
    await page.get_by_label("Description").fill("Place and track orders")
    await page.get_by_role("button", name="Create product").click()
    await page.wait_for_url(re.compile(r"/admin/products/[0-9a-f-]{36}$"))
    await page.get_by_label("Version name").fill("v1")
    await page.get_by_label("Upstream URL").fill("http://127.0.0.1:9/api")
    await page.get_by_label("Paths").fill(f"/{product.lower()}/v1")
    await page.get_by_role("button", name="Create version").click()
    await page.wait_for_url(re.compile(r"/versions/[0-9a-f-]{36}$"))
    spec_file = tmp_path / "orders.yaml"
    spec_file.write_text(SPEC)
    await page.get_by_label("OpenAPI document (YAML or JSON)").set_input_files(str(spec_file))
    await page.get_by_role("button", name="Save specification").click()
    await page.get_by_text("The specification is saved.").wait_for()
    publication = page.locator("form", has=page.get_by_role("button", name=re.compile("Save publication"))).first
    await publication.get_by_label("Status").select_option("published")
    await publication.get_by_label("Auth strategy").select_option(label=f"{strategy_name} (API key)")
    await publication.get_by_label("Developers can request access").check()
    await publication.get_by_role("button", name=re.compile("Save publication")).click()
    await page.get_by_text("The publication is saved.").wait_for()
    await check_page(page, "admin-version")
    await page.get_by_role("link", name=re.compile("← ")).click()
    await check_page(page, "admin-product")
    await page.goto("/admin/products")
    await check_page(page, "admin-products")

    for path, name in (
        ("/admin/portals", "admin-portals"),
        ("/admin/developers", "admin-developers"),
        ("/admin/registrations", "admin-registrations"),
        ("/admin/applications", "admin-applications"),
        ("/admin/idp-operations", "admin-idp-operations"),
        ("/admin/audit?action=dcr_provider", "admin-audit"),
    ):
        await page.goto(path)
        assert await page.locator("h1").count() == 1
        await check_page(page, name)
    await page.goto("/admin/portals")
    await page.locator("table a").first.click()
    await check_page(page, "admin-portal")

    await page.goto("/admin/data-plane")
    await page.get_by_label(re.compile(r"^Name( \*)?$")).fill(unique("edge"))
    async with page.expect_response(lambda r: r.url.endswith("/admin/data-plane/tokens")) as info:
        await page.get_by_role("button", name="Create token").click()
    response = await info.value
    assert response.headers["cache-control"] == "no-store"
    assert (await page.locator("#dp-token").input_value()).startswith("kdp_")
    await check_page(page, "admin-data-plane")

    # CSRF: a form posted without its token gets the 403 page
    await page.evaluate(
        "() => document.querySelector('form[action=\"/admin/data-plane/tokens\"] input[name=csrf_token]').remove()"
    )
    await page.get_by_label(re.compile(r"^Name( \*)?$")).fill(unique("edge"))
    await page.get_by_role("button", name="Create token").click()
    await page.get_by_role("heading", name="This form could not be accepted").wait_for()
    await check_page(page, "admin-csrf-refused")


async def _publish_for_developers(live: LivePortal) -> dict[str, str]:
    portal_id = str(await ensure_default_portal(live.runtime, auto_approve_developers=True))
    headers = {"Authorization": f"Bearer {live.admin_token}"}
    async with httpx.AsyncClient(base_url=live.url, headers=headers, timeout=10) as client:

        async def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
            r = await client.post(url, json=body)
            assert r.status_code == 201, r.text
            return r.json()

        strategy = await post(
            "/v2/application-auth-strategies",
            {"name": unique("k"), "display_name": "API key", "strategy_type": "key_auth", "configs": {"key-auth": {}}},
        )
        product = await post(
            "/v2/api-products",
            {"name": unique("Shipping"), "description": "Labels and tracking", "portal_ids": [portal_id]},
        )
        version = await post(
            f"/v2/api-products/{product['id']}/product-versions",
            {"name": "v2", "gateway_service": {"upstream_url": "http://127.0.0.1:9/", "paths": [f"/{product['id']}"]}},
        )
        await post(
            f"/v2/api-products/{product['id']}/product-versions/{version['id']}/specifications",
            {"name": "shipping.yaml", "content": SPEC},
        )
        await post(
            f"/v2/portals/{portal_id}/product-versions",
            {
                "product_version_id": version["id"],
                "publish_status": "published",
                "application_registration_enabled": True,
                "auto_approve_registration": False,
                "deprecated": False,
                "auth_strategy_ids": [strategy["id"]],
            },
        )
    return {"product": product["id"], "product_name": product["name"], "strategy": strategy["id"]}


async def test_developer_pages(page: Any, live_portal: LivePortal) -> None:
    live = live_portal
    ids = await _publish_for_developers(live)
    await page.goto("/")
    assert page.url.endswith("/login")
    await check_page(page, "portal-login")
    await page.get_by_role("link", name="Create account").click()
    await page.get_by_label("Full name").fill("Ada Lovelace")
    address = f"{unique('ada')}@example.com"
    await page.get_by_label("Email").fill("not an address")
    await page.get_by_role("button", name="Create account").click()
    await page.locator(".field-error").first.wait_for()
    assert await page.get_by_label("Full name").input_value() == "Ada Lovelace"
    await check_page(page, "portal-register-errors")
    await page.get_by_label("Email").fill(address)
    await page.get_by_role("button", name="Create account").click()
    await page.get_by_role("heading", name="Check your mail").wait_for()
    await check_page(page, "portal-check-mail")
    link = last_mail_link(live.mail_dir, "/verify-email")
    assert link.startswith(live.url)
    await page.goto(link)
    await check_page(page, "portal-verify")
    await page.get_by_role("button", name="Confirm my email").click()
    await page.get_by_role("heading", name="Set your password").wait_for()
    await page.get_by_label(re.compile(r"^Password( \*)?$")).fill("correct horse battery")
    await page.get_by_label("Password again").fill("something else entirely")
    await page.get_by_role("button", name="Save password").click()
    await page.locator(".field-error").first.wait_for()
    await check_page(page, "portal-set-password")
    await page.get_by_label(re.compile(r"^Password( \*)?$")).fill("correct horse battery")
    await page.get_by_label("Password again").fill("correct horse battery")
    await page.get_by_role("button", name="Save password").click()
    await page.wait_for_url("**/login?reset=1")
    await page.get_by_label("Email").fill(address)
    await page.get_by_label("Password").fill("correct horse battery")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/apps")
    await check_page(page, "portal-apps-empty")

    await page.get_by_role("link", name="APIs").click()
    await check_page(page, "portal-catalog")
    await page.get_by_label("Search APIs").fill("tracking")
    await page.get_by_role("button", name="Search").click()
    await page.get_by_role("link", name=ids["product_name"]).click()
    await page.get_by_text("Get an order").click()
    await page.get_by_text("Cents").wait_for()
    await check_page(page, "portal-product")
    await page.get_by_role("link", name="Create an app for this API").click()
    await check_page(page, "portal-new-app")
    await page.get_by_label("App name").fill("shipping-bot")
    await page.get_by_label("Description").fill("Prints labels")
    await page.get_by_role("button", name="Create app").click()
    await page.get_by_role("heading", name="Store it now").wait_for()
    key = await page.locator("#api-key").input_value()
    assert key.startswith("kak_")
    assert key not in page.url
    await page.get_by_role("button", name="Copy").click()
    assert await page.evaluate("() => navigator.clipboard.readText()") == key
    await check_page(page, "portal-secret-once")
    await page.get_by_role("link", name="Proceed").click()
    await page.wait_for_url(re.compile(r"/apps/[0-9a-f-]{36}$"))
    assert key not in await page.content()
    await check_page(page, "portal-app")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Withdraw").click()
    await page.get_by_text("The request was withdrawn.").wait_for()
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Delete app").click()
    await page.locator("#confirm-error").wait_for()  # the box was not ticked
    await page.get_by_label(re.compile("Yes, delete")).check()
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Delete app").click()
    await page.wait_for_url("**/apps?deleted=1")
    await check_page(page, "portal-app-deleted")
    await page.goto("/forgot-password")
    await check_page(page, "portal-forgot")
    await page.goto("/products/00000000-0000-0000-0000-000000000000")
    await check_page(page, "portal-not-found")


async def _publish_okta(live: LivePortal) -> dict[str, str]:
    """An Okta provider (the fake org built from Okta's documents), its client-credentials strategy, a version."""
    portal_id = str(await ensure_default_portal(live.runtime, auto_approve_developers=True))
    headers = {"Authorization": f"Bearer {live.admin_token}"}
    async with httpx.AsyncClient(base_url=live.url, headers=headers, timeout=10) as client:

        async def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
            r = await client.post(url, json=body)
            assert r.status_code == 201, r.text
            return r.json()

        provider = await post(
            "/v2/dcr-providers",
            {"name": unique("okta"), "provider_type": "okta", "issuer": ISSUER, "dcr_config": {"dcr_token": API_TOKEN}},
        )
        strategy = await post(
            "/v2/application-auth-strategies",
            {
                "name": unique("okta-cc"),
                "display_name": "Okta machine access",
                "strategy_type": "openid_connect",
                "dcr_provider_id": provider["id"],
                "configs": {
                    "openid-connect": {
                        "issuer": ISSUER,
                        "credential_claim": ["client_id"],
                        "scopes": ["orders:read"],
                        "auth_methods": ["client_credentials", "bearer"],
                    }
                },
            },
        )
        product = await post("/v2/api-products", {"name": unique("Orders"), "portal_ids": [portal_id]})
        version = await post(
            f"/v2/api-products/{product['id']}/product-versions",
            {"name": "v1", "gateway_service": {"upstream_url": "http://127.0.0.1:9/", "paths": [f"/{product['id']}"]}},
        )
        await post(
            f"/v2/portals/{portal_id}/product-versions",
            {
                "product_version_id": version["id"],
                "publish_status": "published",
                "application_registration_enabled": True,
                "auto_approve_registration": True,
                "deprecated": False,
                "auth_strategy_ids": [strategy["id"]],
            },
        )
    return {"strategy": strategy["id"], "version": version["id"]}


async def test_second_client_secret_add_revoke_refresh(page: Any, live_portal: LivePortal) -> None:
    """Zero-downtime rotation from the app page (portal-api.md §5): add a second secret (shown once, with its copy
    button and warning), both secrets work at the IdP's token endpoint, revoke the first and it stops working, then
    refresh the one left. The IdP is the Okta fake, which allows two live secrets per client."""
    validator = load_okta_specs()
    if validator is None:
        missing_service(f"Okta's OpenAPI documents are not in {SPEC_DIR}")
    live = live_portal
    okta = FakeOkta(validator, scopes=("orders:read",))
    original_http = live.runtime.http
    live.runtime.http = okta.client()  # the control plane's outbound client now reaches the Okta fake
    idp = okta.client()

    async def token_status(client_id: str, secret: str) -> int:
        r = await idp.post(
            f"{ISSUER}/v1/token",
            data={"grant_type": "client_credentials", "scope": "orders:read"},
            auth=(client_id, secret),
        )
        return r.status_code

    try:
        ids = await _publish_okta(live)
        dev = await approved_developer(live.runtime, password="correct horse battery")
        await developer_sign_in(page, dev.email, "correct horse battery")

        await page.goto(f"/apps/new?strategy={ids['strategy']}")
        await page.get_by_label("App name").fill("orders-sync")
        await page.get_by_role("button", name="Create app").click()
        await page.get_by_role("heading", name="Store it now").wait_for()
        client_id = await page.locator("#client-id").input_value()
        first = await page.locator("#client-secret").input_value()
        assert await token_status(client_id, first) == 200
        await page.get_by_role("link", name="Proceed").click()
        await page.wait_for_url(re.compile(r"/apps/[0-9a-f-]{36}$"))
        app_url = page.url
        rows = page.locator("#creds-h + div table tbody tr")
        assert await rows.count() == 1
        await check_page(page, "portal-app-one-secret")

        # add a second secret: shown once, with its copy button and the warning, never in a URL
        await page.get_by_label("Name of the new secret").fill("next-deploy")
        async with page.expect_response(lambda r: r.url.endswith("/credentials")) as info:
            await page.get_by_role("button", name="Add a second secret").click()
        response = await info.value
        assert response.status == 201 and response.headers["cache-control"] == "no-store"
        await page.get_by_role("heading", name="Your additional client secret").wait_for()
        await page.get_by_role("heading", name="Store it now").wait_for()
        warning = await page.locator(".secret-box").inner_text()
        assert "shown only once" in warning and "other secret keeps working until you revoke it" in warning
        assert await page.locator("#client-id").input_value() == client_id
        second = await page.locator("#client-secret").input_value()
        assert second and second != first and second not in page.url
        await page.locator("button[data-copy=client-secret]").click()
        assert await page.evaluate("() => navigator.clipboard.readText()") == second
        await check_page(page, "portal-second-secret")
        assert sorted(okta.active_secrets(client_id)) == sorted([first, second])
        assert await token_status(client_id, first) == 200
        assert await token_status(client_id, second) == 200

        # both are listed, neither shown; at the provider's limit the page offers only revoking
        await page.get_by_role("link", name="Proceed").click()
        await page.wait_for_url(app_url)
        assert await rows.count() == 2
        assert second not in await page.content() and first not in await page.content()
        assert await page.get_by_role("button", name="Add a second secret").count() == 0
        assert await page.get_by_role("button", name="Refresh the secret").count() == 0
        await page.get_by_text("as many live secrets as its identity provider allows (2)").wait_for()
        await check_page(page, "portal-app-two-secrets")

        # revoke the first: it stops working at the IdP, the second keeps working
        first_row = rows.filter(has_not_text="next-deploy")
        page.once("dialog", lambda dialog: dialog.accept())
        await first_row.get_by_role("button", name="Revoke").click()
        await page.get_by_text("The credential was revoked.").wait_for()
        assert okta.active_secrets(client_id) == [second]
        assert await token_status(client_id, first) == 401
        assert await token_status(client_id, second) == 200
        assert await rows.count() == 1
        assert "next-deploy" in await rows.first.inner_text()
        # the last secret is not revocable (the app would be locked out); adding and refreshing are offered again
        assert await rows.first.get_by_role("button", name="Revoke").count() == 0
        assert await page.get_by_role("button", name="Add a second secret").count() == 1
        await check_page(page, "portal-app-after-revoke")

        page.once("dialog", lambda dialog: dialog.accept())
        await page.get_by_role("button", name="Refresh the secret").click()
        await page.get_by_role("heading", name="Store it now").wait_for()
        third = await page.locator("#client-secret").input_value()
        assert third not in (first, second)
        assert okta.active_secrets(client_id) == [third]
        assert await token_status(client_id, third) == 200
        assert await token_status(client_id, second) == 401
    finally:
        await idp.aclose()
        await live.runtime.http.aclose()
        live.runtime.http = original_http


async def test_session_renewal_in_the_browser(page: Any, live_portal: LivePortal) -> None:
    """Chromium sends the Path=/ refresh cookie to the pages: without its access cookie (gone after its hour) a page
    and a posted form renew the session; once the session is ended, the sign-in page says so and leads back."""
    live = live_portal
    ids = await _publish_for_developers(live)
    dev = await approved_developer(live.runtime, password="correct horse battery")
    await developer_sign_in(page, dev.email, "correct horse battery")
    jar = {c["name"]: c for c in await page.context.cookies()}
    assert jar["portalrefreshtoken"]["path"] == "/" and jar["portalrefreshtoken"]["httpOnly"]
    assert jar["portalrefreshtoken"]["sameSite"] == "Lax"
    first_access = jar["portalaccesstoken"]["value"]

    await page.context.clear_cookies(name="portalaccesstoken")  # what the browser does when the hour is over
    await page.goto(f"/apps/new?strategy={ids['strategy']}")
    await page.get_by_role("heading", name="New app").wait_for()
    renewed = {c["name"]: c["value"] for c in await page.context.cookies()}
    assert renewed["portalaccesstoken"] not in ("", first_access)
    assert renewed["portalrefreshtoken"] != jar["portalrefreshtoken"]["value"]

    await page.get_by_label("App name").fill("renewed-mid-form")
    await page.context.clear_cookies(name="portalaccesstoken")  # the hour ends while the form is open
    await page.get_by_role("button", name="Create app").click()
    await page.get_by_role("heading", name="Store it now").wait_for()
    await page.get_by_role("link", name="Proceed").click()
    await page.wait_for_url(re.compile(r"/apps/[0-9a-f-]{36}$"))
    app_path = page.url.removeprefix(live.url)

    async with live.runtime.unit(SYSTEM) as ctx:  # e.g. a password reset elsewhere ends every session
        await developers.end_sessions(ctx, dev.developer_id)
        await ctx.session.commit()
    await page.context.clear_cookies(name="portalaccesstoken")
    await page.goto(app_path + "?from=bookmark")
    await page.wait_for_url(re.compile(r"/login\?"))
    assert "expired=1" in page.url
    await page.get_by_text("Your session has ended").wait_for()
    await check_page(page, "portal-login-session-ended")
    await page.get_by_label("Email").fill(dev.email)
    await page.get_by_label("Password").fill("correct horse battery")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(live.url + app_path + "?from=bookmark")
    await page.get_by_role("heading", name="renewed-mid-form").wait_for()


async def test_long_names_fit_and_pages_work_without_scripts(page: Any, chromium: Any, live_portal: LivePortal) -> None:
    """A long unbroken app name wraps (no sideways scrolling at desktop or phone width); in a browser without scripts
    the copy buttons stay hidden and a destructive button asks with a page before it acts."""
    live = live_portal
    ids = await _publish_for_developers(live)
    dev = await approved_developer(live.runtime, password="correct horse battery")
    long_name = "shipping-" + "x" * 110
    await developer_sign_in(page, dev.email, "correct horse battery")
    await page.goto(f"/apps/new?strategy={ids['strategy']}")
    await page.get_by_label("App name").fill(long_name)
    await page.get_by_role("button", name="Create app").click()
    await page.get_by_role("link", name="Proceed").click()
    await page.wait_for_url(re.compile(r"/apps/[0-9a-f-]{36}$"))
    app_path = page.url.removeprefix(live.url)
    await check_page(page, "portal-app-long-name")
    await page.goto("/apps")
    await check_page(page, "portal-apps-long-name")

    context = await chromium.new_context(base_url=live.url, java_script_enabled=False, service_workers="block")
    try:
        nojs = await context.new_page()
        nojs.set_default_timeout(15_000)
        await developer_sign_in(nojs, dev.email, "correct horse battery")
        await nojs.goto(app_path)
        await nojs.get_by_label("Name of the new key").fill("CI")
        await nojs.get_by_role("button", name="Create an API key").click()
        await nojs.get_by_role("heading", name="Store it now").wait_for()
        assert await nojs.locator("button.copy").count() == 1
        assert not await nojs.locator("button.copy").is_visible()  # nothing could copy: not offered
        await nojs.get_by_role("link", name="Proceed").click()
        await nojs.get_by_role("button", name="Revoke CI").click()
        await nojs.get_by_role("heading", name="Please confirm").wait_for()
        await nojs.get_by_text("Revoke CI? Calls made with it will fail.").wait_for()
        await nojs.get_by_role("button", name="Yes, continue").click()
        await nojs.get_by_text("The credential was revoked.").wait_for()
    finally:
        await context.close()
