"""Stored XSS: every user-supplied field shown on the pages is rendered escaped. The data is created through the
Management and Portal APIs with two payloads (a `<script>` element and an attribute break-out), then every admin
page and every developer page that shows it is fetched, and neither payload appears unescaped."""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.integration.web.conftest import Browser, browser
from tests.portal_helpers import approved_developer, ensure_default_portal

__all__ = ["browser"]

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
PAYLOAD = f"{SCRIPT}{BREAKOUT}"

SPEC = f"""openapi: 3.0.3
info:
  title: 'T {PAYLOAD}'
  version: "1"
  description: 'D {PAYLOAD}'
paths:
  /items/{{itemId}}:
    get:
      summary: 'S {PAYLOAD}'
      description: 'OD {PAYLOAD}'
      operationId: 'op{BREAKOUT.replace(" ", "")}'
      tags: ['tag {PAYLOAD}']
      parameters:
        - {{name: itemId, in: path, required: true, description: 'P {PAYLOAD}', schema: {{type: string}}}}
      responses:
        "200":
          description: 'R {PAYLOAD}'
          content:
            application/json:
              schema:
                type: object
                properties:
                  'prop{BREAKOUT}': {{type: string, description: 'PD {PAYLOAD}'}}
"""


def _assert_escaped(page: str, where: str) -> None:
    for raw in (SCRIPT, BREAKOUT, "<img src=x", "onerror=alert(1)>"):
        assert raw not in page, f"{where}: {raw!r} rendered unescaped"
    # the only script elements are the page's own (a nonce'd inline script or /static/app.js), none with alert
    for match in re.finditer(r"<script\b[^>]*>(.*?)</script>", page, re.S):
        assert "alert(1)" not in match.group(1), where


def _assert_security_headers(headers: Any, where: str) -> None:
    csp = headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, where
    assert "unsafe-inline" not in csp, where
    assert headers.get("x-frame-options") == "DENY", where
    assert headers["content-type"].startswith("text/html"), where


async def _json(browser: Browser, method: str, url: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    response = await browser.client.request(method, url, json=body, headers=headers)
    assert response.status_code in (200, 201), (url, response.text[:400])
    return response.json() if response.content else None


async def test_user_supplied_fields_are_escaped_on_every_page(browser: Browser) -> None:
    admin = {"Authorization": f"Bearer {browser.admin_token}"}
    portal_id = str(await ensure_default_portal(browser.runtime))
    strategy = await _json(
        browser,
        "POST",
        "/v2/application-auth-strategies",
        {
            "name": f"keys {PAYLOAD}",
            "display_name": f"Key {PAYLOAD}",
            "strategy_type": "key_auth",
            "configs": {"key-auth": {}},
        },
        admin,
    )
    provider = await _json(
        browser,
        "POST",
        "/v2/dcr-providers",
        {
            "name": f"prov {PAYLOAD}",
            "provider_type": "rfc7591",
            "issuer": "https://idp.example.com",
            "dcr_config": {"initial_access_token": "iat"},
        },
        admin,
    )
    product = await _json(
        browser,
        "POST",
        "/v2/api-products",
        {"name": f"Prod {PAYLOAD}", "description": f"Desc {PAYLOAD}", "portal_ids": [portal_id]},
        admin,
    )
    version = await _json(
        browser,
        "POST",
        f"/v2/api-products/{product['id']}/product-versions",
        {"name": f"v1 {PAYLOAD}", "gateway_service": {"upstream_url": "http://127.0.0.1:9/", "paths": ["/x/v1"]}},
        admin,
    )
    await _json(
        browser,
        "POST",
        f"/v2/api-products/{product['id']}/product-versions/{version['id']}/specifications",
        {"name": "x.yaml", "content": SPEC},
        admin,
    )
    await _json(
        browser,
        "POST",
        f"/v2/portals/{portal_id}/product-versions",
        {
            "product_version_id": version["id"],
            "publish_status": "published",
            "application_registration_enabled": True,
            "auto_approve_registration": False,
            "deprecated": False,
            "auth_strategy_ids": [strategy["id"]],
        },
        admin,
    )
    # a developer who signs up through the Portal API (pending, shown to the admin) ...
    signup = await browser.client.post(
        "/api/v2/developer", json={"email": f"x{uuid.uuid4().hex[:8]}@example.com", "full_name": f"Eve {PAYLOAD}"}
    )
    assert signup.status_code == 201, signup.text
    # ... and an approved one whose application and access request carry the payloads
    dev = await approved_developer(browser.runtime, portal_id=uuid.UUID(portal_id), full_name=f"Mal {PAYLOAD}")
    app = await _json(
        browser,
        "POST",
        "/api/v2/applications",
        {"name": f"App {PAYLOAD}", "description": f"AppDesc {PAYLOAD}", "auth_strategy_id": strategy["id"]},
        dev.bearer,
    )
    await _json(
        browser,
        "POST",
        f"/api/v2/applications/{app['id']}/registrations",
        {"product_version_id": version["id"]},
        dev.bearer,
    )
    await _json(
        browser, "POST", f"/api/v2/applications/{app['id']}/credentials", {"display_name": f"K {PAYLOAD}"}, dev.bearer
    )

    await browser.admin_login()
    escaped_seen: set[str] = set()
    shown: list[str] = []
    admin_pages = [
        "/admin/",
        "/admin/providers",
        f"/admin/providers/{provider['id']}",
        "/admin/strategies",
        f"/admin/strategies/{strategy['id']}",
        "/admin/products",
        f"/admin/products/{product['id']}",
        f"/admin/products/{product['id']}/versions/{version['id']}",
        "/admin/portals",
        f"/admin/portals/{portal_id}",
        "/admin/developers",
        "/admin/registrations",
        "/admin/applications",
        "/admin/audit",
    ]
    for url in admin_pages:
        page = await browser.get(url)
        assert page.status_code == 200, (url, page.status_code)
        _assert_escaped(page.text, url)
        _assert_security_headers(page.headers, url)
        shown.append(page.text)
        escaped_seen.update(m for m in re.findall(r"(\w+) &lt;script&gt;alert\(1\)", page.text))
    browser.client.cookies.clear()
    browser.client.cookies.set("portalaccesstoken", dev.access_token)
    dev_pages = ["/", f"/products/{product['id']}", "/apps", f"/apps/{app['id']}", "/apps/new"]
    for url in dev_pages:
        page = await browser.get(url)
        assert page.status_code == 200, (url, page.status_code)
        _assert_escaped(page.text, url)
        _assert_security_headers(page.headers, url)
        shown.append(page.text)
        escaped_seen.update(m for m in re.findall(r"(\w+) &lt;script&gt;alert\(1\)", page.text))
    # every field was really rendered (escaped) somewhere, so the test cannot pass by showing nothing
    assert {
        "prov",
        "keys",
        "Key",
        "Prod",
        "Desc",
        "v1",
        "Eve",
        "Mal",
        "App",
        "AppDesc",
        "S",
        "OD",
        "P",
        "R",
        "PD",
        "T",
        "K",
    } <= (escaped_seen), sorted(escaped_seen)
    assert any("&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in text for text in shown)  # the break-out, escaped
