"""Admin pages over the catalog and portals: product → version → spec → publication → approval."""

from __future__ import annotations

import re
import uuid

from keystile.services import outbox
from keystile.services.context import SYSTEM
from tests.integration.web.conftest import Browser, csrf_of, field_error, input_value
from tests.integration.web.test_portal_pages import SPEC
from tests.portal_helpers import approved_developer, ensure_default_portal


async def test_publish_a_product_then_approve_a_request(browser: Browser) -> None:
    portal_id = await ensure_default_portal(browser.runtime)
    await browser.admin_login()
    strategy = await browser.submit(
        "/admin/strategies/new",
        "/admin/strategies/new",
        [("name", "keys"), ("display_name", "API key"), ("strategy_type", "key_auth"), ("key_names", "apikey")],
    )
    assert strategy.status_code == 303, strategy.text
    strategy_id = strategy.headers["location"].rsplit("/", 1)[1]
    bad = await browser.submit("/admin/products", "/admin/products", [("name", ""), ("description", "Invoices")])
    assert bad.status_code == 400
    assert field_error(bad.text, "name")
    assert "Invoices" in bad.text
    product = await browser.submit(
        "/admin/products", "/admin/products", [("name", "Billing"), ("portal_ids", str(portal_id))]
    )
    assert product.status_code == 303
    product_url = product.headers["location"]
    bad_version = await browser.submit(
        product_url,
        product_url + "/versions",
        [("name", "v1"), ("upstream_url", "ftp://x"), ("paths", "billing"), ("strip_path", "true")],
    )
    assert bad_version.status_code == 400
    assert field_error(bad_version.text, "version-upstream_url") or field_error(bad_version.text, "version-paths")
    assert input_value(bad_version.text, "name") == "v1"
    # the product form beside it keeps the product's own values, and no element id is used twice
    assert 'id="f-name" name="name" type="text" value="Billing"' in bad_version.text
    ids = re.findall(r' id="([^"]+)"', bad_version.text)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    renamed = await browser.submit(
        product_url, product_url, [("name", "Billing API"), ("description", ""), ("portal_ids", str(portal_id))]
    )
    assert renamed.status_code == 303, renamed.text[:400]
    assert "Billing API" in (await browser.get(product_url)).text
    version = await browser.submit(
        product_url,
        product_url + "/versions",
        [
            ("name", "v1"),
            ("upstream_url", "http://127.0.0.1:9/api"),
            ("paths", "/billing/v1"),
            ("strip_path", "false"),
            ("strip_path", "true"),
        ],
    )
    assert version.status_code == 303, version.text
    version_url = version.headers["location"]
    page = await browser.get(version_url)
    assert page.status_code == 200
    # spec upload as a file (multipart), with its CSRF token
    uploaded = await browser.client.post(
        version_url + "/spec",
        data={"csrf_token": csrf_of(page.text), "spec_name": ""},
        files={"file": ("billing.yaml", SPEC.encode(), "application/yaml")},
    )
    assert uploaded.status_code == 303, uploaded.text
    broken = await browser.client.post(
        version_url + "/spec",
        data={"csrf_token": csrf_of(page.text), "spec_name": "x.yaml", "content": "openapi: [nope"},
    )
    assert broken.status_code == 400
    assert field_error(broken.text, "file")
    assert "billing.yaml" in (await browser.get(version_url)).text
    # publication needs a strategy when registration is enabled
    refused = await browser.submit(
        version_url,
        version_url + "/publication",
        [
            ("portal_id", str(portal_id)),
            ("publish_status", "published"),
            ("auth_strategy_id", ""),
            ("application_registration_enabled", "false"),
            ("application_registration_enabled", "true"),
        ],
    )
    assert refused.status_code == 400
    published = await browser.submit(
        version_url,
        version_url + "/publication",
        [
            ("portal_id", str(portal_id)),
            ("publish_status", "published"),
            ("auth_strategy_id", strategy_id),
            ("application_registration_enabled", "false"),
            ("application_registration_enabled", "true"),
            ("auto_approve_registration", "false"),
            ("deprecated", "false"),
        ],
    )
    assert published.status_code == 303, published.text
    assert "published" in (await browser.get(product_url)).text
    # a developer asks for access through the portal pages
    dev = await approved_developer(browser.runtime, portal_id=portal_id, full_name="Grace Hopper")
    browser.client.cookies.set("portalaccesstoken", dev.access_token)
    version_id = version_url.rsplit("/", 1)[1]
    created = await browser.submit(
        "/apps/new",
        "/apps/new",
        {"name": "ledger", "auth_strategy_id": strategy_id, "product_version_id": version_id},
    )
    assert created.status_code == 201
    # the admin sees it waiting and approves it
    waiting = await browser.get(f"/admin/registrations?portal={portal_id}")
    assert "ledger" in waiting.text and "Grace Hopper" in waiting.text
    reg_id = re.search(r'action="/admin/registrations/([0-9a-f-]+)"', waiting.text).group(1)
    approved = await browser.submit(
        f"/admin/registrations?portal={portal_id}",
        f"/admin/registrations/{reg_id}",
        {"portal_id": str(portal_id), "status": "approved", "back": "pending"},
    )
    assert approved.status_code == 303
    assert "ledger" not in (await browser.get(f"/admin/registrations?portal={portal_id}")).text
    assert "approved" in (await browser.get(f"/admin/registrations?portal={portal_id}&status=approved")).text
    apps = await browser.get(f"/admin/applications?portal={portal_id}")
    assert "ledger" in apps.text
    devs = await browser.get(f"/admin/developers?portal={portal_id}")
    assert "Grace Hopper" in devs.text
    revoke = await browser.submit(
        f"/admin/developers?portal={portal_id}",
        f"/admin/developers/{dev.developer_id}",
        {"portal_id": str(portal_id), "status": "revoked"},
    )
    assert revoke.status_code == 303
    assert "revoked" in (await browser.get(f"/admin/developers?portal={portal_id}&status=revoked")).text


async def test_portals_idp_operations_and_data_plane_pages(browser: Browser) -> None:
    await ensure_default_portal(browser.runtime)
    await browser.admin_login()
    listing = await browser.get("/admin/portals")
    assert listing.status_code == 200
    created = await browser.submit("/admin/portals", "/admin/portals", {"name": "partners", "display_name": "Partners"})
    assert created.status_code == 303, created.text
    url = created.headers["location"]
    bad = await browser.submit(
        url, url, {"name": "partners", "display_name": "Partners", "custom_domain": "not a host!"}
    )
    assert bad.status_code == 400
    assert field_error(bad.text, "custom_domain")
    ops = await browser.get("/admin/idp-operations")
    assert ops.status_code == 200 and "Nothing pending" in ops.text
    dp = await browser.submit("/admin/data-plane", "/admin/data-plane/tokens", {"name": "edge-1"})
    assert dp.status_code == 201
    assert dp.headers["cache-control"] == "no-store"
    token = re.search(r'id="dp-token" type="text" value="(kdp_[^"]+)"', dp.text).group(1)
    after = await browser.get("/admin/data-plane")
    assert "edge-1" in after.text and token not in after.text
    assert uuid.UUID(url.rsplit("/", 1)[1])


async def test_pending_idp_operations_retry_and_give_up(browser: Browser) -> None:
    async with browser.runtime.unit(SYSTEM) as ctx:
        first = outbox.enqueue(
            ctx,
            operation="sweep",
            provider_id=None,
            application_id=None,
            client_id="client-abc",
            status="stuck",
            last_error="the IdP answered 503",
        )
        second = outbox.enqueue(ctx, operation="sweep", provider_id=None, application_id=None, client_id="client-def")
        await ctx.session.commit()
    await browser.admin_login()
    page = await browser.get("/admin/idp-operations")
    assert "client-abc" in page.text and "the IdP answered 503" in page.text and "stuck" in page.text
    retried = await browser.submit("/admin/idp-operations", f"/admin/idp-operations/{first.id}", {"action": "retry"})
    assert retried.status_code == 303
    after = await browser.get(retried.headers["location"])
    assert "will be retried now" in after.text
    given = await browser.submit("/admin/idp-operations", f"/admin/idp-operations/{second.id}", {"action": "give_up"})
    assert given.status_code == 303
    assert "client-def" not in (await browser.get("/admin/idp-operations")).text
    audit = await browser.get("/admin/audit?action=idp_operation")
    assert "idp_operation.give_up" in audit.text and "idp_operation.retry" in audit.text


async def test_the_version_page_warns_when_a_published_version_cannot_be_called(browser: Browser) -> None:
    portal_id = await ensure_default_portal(browser.runtime)
    await browser.admin_login()
    product = await browser.submit(
        "/admin/products", "/admin/products", [("name", "Ledger"), ("portal_ids", str(portal_id))]
    )
    product_url = product.headers["location"]
    version = await browser.submit(product_url, product_url + "/versions", [("name", "v1")])  # no route
    assert version.status_code == 303, version.text
    version_url = version.headers["location"]
    publication = [("portal_id", str(portal_id)), ("auth_strategy_id", ""), ("application_registration_enabled", "")]
    assert "Published without" not in (await browser.get(version_url)).text  # not published: nothing to warn of
    saved = await browser.submit(
        version_url, version_url + "/publication", [*publication, ("publish_status", "published")]
    )
    assert saved.status_code == 303, saved.text
    page = await browser.get(version_url)
    assert "Published without a gateway route." in page.text
    routed = await browser.submit(
        version_url,
        version_url,
        [("name", "v1"), ("upstream_url", "http://127.0.0.1:9/"), ("paths", "/ledger"), ("strip_path", "true")],
    )
    assert routed.status_code == 303, routed.text
    page = await browser.get(version_url)
    assert "Published without a gateway route." not in page.text
    assert "Every call is refused." in page.text  # no strategy, anonymous calls not allowed: the gateway says 401
    anonymous = await browser.submit(
        version_url,
        version_url,
        [
            ("name", "v1"),
            ("upstream_url", "http://127.0.0.1:9/"),
            ("paths", "/ledger"),
            ("strip_path", "true"),
            ("allow_anonymous", "true"),
        ],
    )
    assert anonymous.status_code == 303, anonymous.text
    assert "Every call is refused." not in (await browser.get(version_url)).text
