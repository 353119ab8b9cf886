"""Developer portal pages: account flows, catalog, product page, My Apps (portal-api.md §8)."""

from __future__ import annotations

import email
import re
import socket
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.integration.web.conftest import Browser, csrf_of, field_error, form_fields, input_value
from tests.portal_helpers import approved_developer, ensure_default_portal

SPEC = """openapi: 3.0.3
info: {title: Billing API, version: "1.0"}
paths:
  /invoices/{invoiceId}:
    get:
      summary: Get an invoice
      operationId: getInvoice
      parameters:
        - {name: invoiceId, in: path, required: true, schema: {type: string, format: uuid}}
        - {name: expand, in: query, schema: {type: boolean}, description: Include the lines}
      responses:
        "200":
          description: The invoice
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Invoice"}
  /invoices:
    post:
      summary: Create an invoice
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Invoice"}
      responses:
        "201": {description: Created}
components:
  schemas:
    Invoice:
      type: object
      required: [amount]
      properties:
        amount: {type: integer, description: Cents}
        lines:
          type: array
          items: {$ref: "#/components/schemas/Line"}
    Line:
      type: object
      properties:
        label: {type: string}
        parent: {$ref: "#/components/schemas/Invoice"}
"""


async def _admin_json(browser: Browser, method: str, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await browser.client.request(
        method, url, json=body, headers={"Authorization": f"Bearer {browser.admin_token}"}
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


async def publish_key_auth_product(browser: Browser, portal_id: str, *, auto_approve: bool = False) -> dict[str, str]:
    strategy = await _admin_json(
        browser,
        "POST",
        "/v2/application-auth-strategies",
        {"name": "keys", "display_name": "API key", "strategy_type": "key_auth", "configs": {"key-auth": {}}},
    )
    product = await _admin_json(
        browser, "POST", "/v2/api-products", {"name": "Billing", "description": "Invoices", "portal_ids": [portal_id]}
    )
    version = await _admin_json(
        browser,
        "POST",
        f"/v2/api-products/{product['id']}/product-versions",
        {"name": "v1", "gateway_service": {"upstream_url": "http://127.0.0.1:9/", "paths": ["/billing/v1"]}},
    )
    await _admin_json(
        browser,
        "POST",
        f"/v2/api-products/{product['id']}/product-versions/{version['id']}/specifications",
        {"name": "billing.yaml", "content": SPEC},
    )
    await _admin_json(
        browser,
        "POST",
        f"/v2/portals/{portal_id}/product-versions",
        {
            "product_version_id": version["id"],
            "publish_status": "published",
            "application_registration_enabled": True,
            "auto_approve_registration": auto_approve,
            "deprecated": False,
            "auth_strategy_ids": [strategy["id"]],
        },
    )
    return {"strategy": strategy["id"], "product": product["id"], "version": version["id"]}


def _last_link(folder: Path, path: str) -> str:
    mails = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime)
    assert mails, "no mail was written"
    msg = email.message_from_bytes(mails[-1].read_bytes())
    body = msg.get_payload(decode=True).decode()
    match = re.search(rf"http://[^\s]+{path}\?token=([0-9a-f-]+)", body)
    assert match, body
    return f"{path}?token={match.group(1)}"


async def test_sign_up_verify_set_password_and_sign_in(browser: Browser, tmp_path: Path) -> None:
    await ensure_default_portal(browser.runtime, auto_approve_developers=True)
    browser.runtime.settings.mail_outbox = tmp_path / "mail"
    bad = await browser.submit("/register", "/register", {"full_name": "Ada Lovelace", "email": "not-an-email"})
    assert bad.status_code == 400
    assert field_error(bad.text, "email")
    assert input_value(bad.text, "full_name") == "Ada Lovelace"
    long = await browser.submit("/register", "/register", {"full_name": "A" * 300, "email": "ada@example.com"})
    assert long.status_code == 400
    # beside its field, a message does not repeat the API's field name
    assert field_error(long.text, "full_name") == "Must be at most 256 characters"
    assert "Trace id" not in long.text
    ok = await browser.submit("/register", "/register", {"full_name": "Ada Lovelace", "email": "ada@example.com"})
    assert ok.status_code == 200
    assert "Check your mail" in ok.text
    link = _last_link(tmp_path / "mail", "/verify-email")
    confirm = await browser.get(link)
    assert confirm.status_code == 200
    token = link.split("=", 1)[1]
    verified = await browser.post("/verify-email", [("token", token), ("csrf_token", csrf_of(confirm.text))])
    assert verified.status_code == 200
    assert "Set your password" in verified.text
    assert verified.headers["cache-control"] == "no-store"
    again = await browser.post("/verify-email", [("token", token), ("csrf_token", csrf_of(confirm.text))])
    assert again.status_code == 410
    reset_token = re.search(r'name="token" value="([0-9a-f-]+)"', verified.text).group(1)
    csrf = csrf_of(verified.text)
    mismatch = await browser.post(
        "/reset-password",
        [
            ("token", reset_token),
            ("first", "true"),
            ("password", "correct horse battery"),
            ("password_confirm", "correct horse batterx"),
            ("csrf_token", csrf),
        ],
    )
    assert mismatch.status_code == 400
    assert field_error(mismatch.text, "password_confirm")
    assert "correct horse" not in mismatch.text  # passwords are never echoed
    short = await browser.post(
        "/reset-password",
        [
            ("token", reset_token),
            ("first", "true"),
            ("password", "short"),
            ("password_confirm", "short"),
            ("csrf_token", csrf),
        ],
    )
    assert short.status_code == 400
    assert field_error(short.text, "password")
    saved = await browser.post(
        "/reset-password",
        [
            ("token", reset_token),
            ("first", "true"),
            ("password", "correct horse battery"),
            ("password_confirm", "correct horse battery"),
            ("csrf_token", csrf),
        ],
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == "/login?reset=1"
    wrong = await browser.submit("/login", "/login", {"email": "ada@example.com", "password": "wrong password!!"})
    assert wrong.status_code == 401
    assert "You have entered an invalid email or password." in wrong.text
    assert "Invalid Credentials" not in wrong.text  # the API's title is not a sentence for people
    assert "Trace id" not in wrong.text  # a mistake the user can correct needs no trace id
    assert input_value(wrong.text, "email") == "ada@example.com"
    signed = await browser.submit("/login", "/login", {"email": "ada@example.com", "password": "correct horse battery"})
    assert signed.status_code == 303
    assert "portalaccesstoken=" in signed.headers.get("set-cookie", "")
    apps = await browser.get("/apps")
    assert apps.status_code == 200
    assert "You have no app yet" in apps.text
    out = await browser.submit("/apps", "/logout", {})
    assert out.status_code == 303
    assert (await browser.get("/apps")).headers["location"] == "/login?next=/apps"


async def test_private_catalog_needs_sign_in_and_lists_published_products(browser: Browser) -> None:
    portal_id = str(await ensure_default_portal(browser.runtime))
    ids = await publish_key_auth_product(browser, portal_id)
    anonymous = await browser.get("/")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login"
    dev = await approved_developer(browser.runtime, portal_id=uuid.UUID(portal_id))
    browser.client.cookies.set("portalaccesstoken", dev.access_token)
    catalog = await browser.get("/")
    assert catalog.status_code == 200
    assert "Billing" in catalog.text
    assert "Billing" in (await browser.get("/?q=invoic")).text
    assert "Nothing matches" in (await browser.get("/?q=zzz")).text
    product = await browser.get(f"/products/{ids['product']}")
    assert product.status_code == 200
    text = product.text
    assert "Get an invoice" in text and "/invoices/{invoiceId}" in text
    assert "invoiceId" in text and "expand" in text and "Include the lines" in text
    assert "amount" in text and "Cents" in text and "label" in text  # request/response schemas, $refs resolved
    assert "API key" in text
    assert "Create an app for this API" in text
    assert (await browser.get("/products/not-a-uuid")).status_code == 404


async def test_new_app_shows_the_key_once_then_detail_request_revoke_delete(browser: Browser) -> None:
    portal_id = str(await ensure_default_portal(browser.runtime))
    ids = await publish_key_auth_product(browser, portal_id)
    dev = await approved_developer(browser.runtime, portal_id=uuid.UUID(portal_id))
    browser.client.cookies.set("portalaccesstoken", dev.access_token)
    bad = await browser.submit(
        "/apps/new", "/apps/new", {"name": "", "auth_strategy_id": ids["strategy"], "description": "keep me"}
    )
    assert bad.status_code == 400
    assert field_error(bad.text, "name")
    assert "keep me" in bad.text
    created = await browser.submit(
        f"/apps/new?strategy={ids['strategy']}&version={ids['version']}",
        "/apps/new",
        {
            "name": "billing-sync",
            "auth_strategy_id": ids["strategy"],
            "description": "",
            "product_version_id": ids["version"],
        },
    )
    assert created.status_code == 201  # the POST's own answer, no redirect
    assert created.headers["cache-control"] == "no-store"
    assert "Store it now" in created.text
    key = re.search(r'id="api-key" type="text" value="(kak_[A-Za-z0-9_-]+)"', created.text).group(1)
    assert "pending" in created.text  # access requested for the version
    proceed = re.search(r'href="(/apps/[0-9a-f-]+)">Proceed', created.text).group(1)
    detail = await browser.get(proceed)
    assert detail.status_code == 200
    assert key not in detail.text
    assert "Billing" in detail.text and "pending" in detail.text
    dup = await browser.submit("/apps/new", "/apps/new", {"name": "billing-sync", "auth_strategy_id": ids["strategy"]})
    assert dup.status_code == 409
    assert "billing-sync" in dup.text
    # a second key, then revoke it
    second = await browser.submit(proceed, proceed + "/credentials", {"display_name": "CI"})
    assert second.status_code == 201
    detail = await browser.get(proceed)
    cred_ids = re.findall(rf'action="{proceed}/credentials/([0-9a-f-]+)/revoke"', detail.text)
    assert len(cred_ids) == 2
    # without scripts nothing asks before the form is sent: the server asks with a page, and nothing is revoked yet
    revoke = f"{proceed}/credentials/{cred_ids[0]}/revoke"
    asked = await browser.post(revoke, form_fields(detail.text, revoke))
    assert asked.status_code == 200, asked.text
    assert "Please confirm" in asked.text
    assert re.search(r"<p>Revoke (first key|CI)\? Calls made with it will fail\.</p>", asked.text)
    assert len(re.findall(r"/revoke\"", (await browser.get(proceed)).text)) == 2
    assert f'href="{proceed}"' not in asked.text  # no Referer sent: Cancel goes to the start page
    for referer, back in ((f"http://testserver{proceed}", proceed), ("http://testserver//evil.example/x", "/")):
        page = await browser.client.post(
            revoke,
            content=urlencode(form_fields(detail.text, revoke)),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Referer": referer},
        )
        assert f'<a class="button secondary" href="{back}">Cancel</a>' in page.text  # never off the site
    revoked = await browser.post(revoke, form_fields(asked.text, revoke))  # "Yes, continue"
    assert revoked.status_code == 303
    assert "revoked" in (await browser.get(proceed)).text
    # a rejected edit opens the Edit section, so its message is seen
    bad_edit = await browser.submit(proceed, proceed, {"name": ""})
    assert bad_edit.status_code == 400
    assert field_error(bad_edit.text, "name")
    assert "<details open>" in bad_edit.text
    assert "<details open>" not in (await browser.get(proceed)).text
    # withdraw the request, ask again from the detail page
    reg_id = re.search(rf'action="{proceed}/registrations/([0-9a-f-]+)/withdraw"', detail.text).group(1)
    assert (await browser.submit(proceed, f"{proceed}/registrations/{reg_id}/withdraw", {})).status_code == 303
    page = await browser.get(proceed)
    assert "has no access to any API yet" in page.text
    asked = await browser.submit(proceed, proceed + "/registrations", {"product_version_id": ids["version"]})
    assert asked.status_code == 303
    # delete needs the confirmation box
    refused = await browser.submit(proceed, proceed + "/delete", {})
    assert refused.status_code == 400
    assert field_error(refused.text, "confirm")
    gone = await browser.submit(proceed, proceed + "/delete", {"confirm": "yes"})
    assert gone.status_code == 303
    assert gone.headers["location"] == "/apps?deleted=1"
    assert (await browser.get(proceed)).status_code == 404


async def test_a_form_that_hands_out_a_secret_is_carried_out_once(browser: Browser) -> None:
    """Reloading the page that showed a secret (the browser sends the form again) or clicking twice makes nothing
    twice: the second sending goes to what the first one made, with a note; a refused form can be sent again."""
    portal_id = str(await ensure_default_portal(browser.runtime))
    ids = await publish_key_auth_product(browser, portal_id)
    dev = await approved_developer(browser.runtime, portal_id=uuid.UUID(portal_id))
    browser.client.cookies.set("portalaccesstoken", dev.access_token)
    new_page = await browser.get(f"/apps/new?strategy={ids['strategy']}")
    sent = [(k, v) for k, v in form_fields(new_page.text, "/apps/new") if k != "product_version_id"]
    assert dict(sent)["form_once"]
    refused = await browser.post("/apps/new", [*sent, ("name", ""), ("auth_strategy_id", ids["strategy"])])
    assert refused.status_code == 400  # refused: the same form may be sent again once corrected
    form = [*sent, ("name", "once-only"), ("auth_strategy_id", ids["strategy"])]
    created = await browser.post("/apps/new", form)
    assert created.status_code == 201, created.text
    app_path = re.search(r'href="(/apps/[0-9a-f-]+)">Proceed', created.text).group(1)
    again = await browser.post("/apps/new", form)  # what a reload of the secret page sends
    assert again.status_code == 303
    assert again.headers["location"] == f"{app_path}?saved=resent"
    assert "kak_" not in again.text
    listed = await browser.get("/apps")
    assert listed.text.count(">once-only<") == 1
    shown = await browser.get(again.headers["location"])
    assert "That form was already sent once" in shown.text

    detail = await browser.get(app_path)
    add = form_fields(detail.text, f"{app_path}/credentials")
    first = await browser.post(f"{app_path}/credentials", [*add, ("display_name", "CI")])
    assert first.status_code == 201
    second = await browser.post(f"{app_path}/credentials", [*add, ("display_name", "CI")])
    assert second.status_code == 303
    detail = await browser.get(app_path)
    assert len(re.findall(r"/revoke\"", detail.text)) == 2  # the first key and one "CI", not two
    # another render of the page carries another token: a new key on purpose is made
    third = await browser.post(f"{app_path}/credentials", [*form_fields(detail.text, f"{app_path}/credentials")])
    assert third.status_code == 201


@pytest.mark.parametrize("path", ["/apps", "/apps/new"])
async def test_app_pages_need_a_developer(browser: Browser, path: str) -> None:
    await ensure_default_portal(browser.runtime)
    response = await browser.get(path)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={path}"


async def test_identity_provider_failure_is_shown_in_plain_words_with_the_trace_id(browser: Browser) -> None:
    portal_id = await ensure_default_portal(browser.runtime)
    with socket.socket() as sock:  # a port nobody listens on: the IdP is down
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    issuer = f"http://127.0.0.1:{port}"
    provider = await _admin_json(
        browser,
        "POST",
        "/v2/dcr-providers",
        {
            "name": "down",
            "provider_type": "rfc7591",
            "issuer": issuer,
            "dcr_config": {"registration_endpoint": f"{issuer}/reg"},
        },
    )
    strategy = await _admin_json(
        browser,
        "POST",
        "/v2/application-auth-strategies",
        {
            "name": "down-cc",
            "display_name": "OAuth",
            "strategy_type": "openid_connect",
            "dcr_provider_id": provider["id"],
            "configs": {
                "openid-connect": {"issuer": issuer, "credential_claim": ["client_id"], "auth_methods": ["bearer"]}
            },
        },
    )
    await _admin_json(
        browser, "PATCH", f"/v2/portals/{portal_id}", {"default_application_auth_strategy_id": strategy["id"]}
    )
    dev = await approved_developer(browser.runtime, portal_id=portal_id)
    browser.client.cookies.set("portalaccesstoken", dev.access_token)
    page = await browser.get("/apps/new")
    assert "Redirect URI" in page.text  # offered for a DCR strategy
    failed = await browser.submit(
        "/apps/new",
        "/apps/new",
        {
            "name": "orders",
            "auth_strategy_id": strategy["id"],
            "description": "kept",
            "redirect_uri": "https://a.example/cb",
        },
    )
    assert failed.status_code in (502, 504)
    assert "The identity provider did not accept the request" in failed.text
    assert re.search(r"Trace id: <code>[0-9a-f]{32}</code>", failed.text)
    assert input_value(failed.text, "name") == "orders"
    assert "kept" in failed.text
    assert "You have no app yet" in (await browser.get("/apps")).text  # nothing left behind


async def test_public_portal_catalog_is_anonymous_and_has_no_accounts(browser: Browser) -> None:
    portal_id = await ensure_default_portal(browser.runtime, is_public=True)
    ids = await publish_key_auth_product(browser, str(portal_id))
    catalog = await browser.get("/")
    assert catalog.status_code == 200
    assert "Billing" in catalog.text
    assert "Create account" not in catalog.text
    product = await browser.get(f"/products/{ids['product']}")
    assert product.status_code == 200
    assert "Sign in</a> to request access" not in product.text
    for path in ("/login", "/register", "/apps"):
        refused = await browser.get(path)
        assert refused.status_code == 403, path
        assert "no developer accounts" in refused.text


async def test_portal_forms_refuse_a_missing_or_foreign_csrf_token(browser: Browser) -> None:
    await ensure_default_portal(browser.runtime)
    missing = await browser.post("/login", [("email", "a@example.com"), ("password", "x" * 12)])
    assert missing.status_code == 403
    assert "did not come from this site" in missing.text
    page = await browser.get("/login")
    token = csrf_of(page.text)
    browser.client.cookies.clear()  # another browser: the token is bound to the first one's pre-session
    foreign = await browser.post("/login", [("email", "a@example.com"), ("password", "x" * 12), ("csrf_token", token)])
    assert foreign.status_code == 403


async def test_self_managed_app_asks_for_the_client_id(browser: Browser) -> None:
    portal_id = await ensure_default_portal(browser.runtime)
    strategy = await _admin_json(
        browser,
        "POST",
        "/v2/application-auth-strategies",
        {
            "name": "own-client",
            "display_name": "Bring your own client",
            "strategy_type": "openid_connect",
            "configs": {
                "openid-connect": {
                    "issuer": "https://idp.example.com",
                    "credential_claim": ["client_id"],
                    "auth_methods": ["bearer"],
                }
            },
        },
    )
    await _admin_json(
        browser, "PATCH", f"/v2/portals/{portal_id}", {"default_application_auth_strategy_id": strategy["id"]}
    )
    dev = await approved_developer(browser.runtime, portal_id=portal_id)
    browser.client.cookies.set("portalaccesstoken", dev.access_token)
    form = await browser.get("/apps/new")
    assert "Client ID of your own OAuth client" in form.text
    assert "Redirect URI" not in form.text
    missing = await browser.submit("/apps/new", "/apps/new", {"name": "mine", "auth_strategy_id": strategy["id"]})
    assert missing.status_code == 400
    assert field_error(missing.text, "reference_id")
    assert input_value(missing.text, "name") == "mine"
    created = await browser.submit(
        "/apps/new", "/apps/new", {"name": "mine", "auth_strategy_id": strategy["id"], "reference_id": "0oa-own-client"}
    )
    assert created.status_code == 201
    assert "Use your own client's ID and secret with it." in created.text.replace("&#39;", "'")
    detail_url = re.search(r'href="(/apps/[0-9a-f-]+)">Proceed', created.text).group(1)
    detail = await browser.get(detail_url)
    assert "0oa-own-client" in detail.text
    assert "single secret" in detail.text


async def test_an_app_needing_attention_says_so_to_its_developer_and_to_admins(browser: Browser) -> None:
    from sqlalchemy import update

    from keystile.store.models import Application

    portal_id = str(await ensure_default_portal(browser.runtime))
    ids = await publish_key_auth_product(browser, portal_id)
    dev = await approved_developer(browser.runtime, portal_id=uuid.UUID(portal_id))
    browser.client.cookies.set("portalaccesstoken", dev.access_token)
    created = await browser.submit("/apps/new", "/apps/new", {"name": "flagged", "auth_strategy_id": ids["strategy"]})
    proceed = re.search(r'href="(/apps/[0-9a-f-]+)">Proceed', created.text).group(1)
    assert "may no longer work" not in (await browser.get(proceed)).text
    app_id = uuid.UUID(proceed.rsplit("/", 1)[1])
    async with browser.runtime.sessions() as session:
        await session.execute(update(Application).where(Application.id == app_id).values(needs_attention=True))
        await session.commit()
    page = await browser.get(proceed)
    assert "This app's secret may no longer work." in page.text
    await browser.admin_login()
    admin = await browser.get(f"/admin/applications?portal={portal_id}")
    assert admin.status_code == 200
    assert ">needs attention</span>" in admin.text
