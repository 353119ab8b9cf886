"""Admin pages: sign-in, CSRF, providers, strategies, audit (portal-api.md §8)."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

from tests.integration.web.conftest import Browser, csrf_of, field_error, input_value


async def test_admin_pages_need_a_session(browser: Browser) -> None:
    response = await browser.get("/admin/providers")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?next=/admin/providers"


async def test_sign_in_sets_an_httponly_session_and_wrong_tokens_are_refused(browser: Browser) -> None:
    bad = await browser.submit("/admin/login", "/admin/login", {"admin_token": "kpat_" + "x" * 43})
    assert bad.status_code == 401
    assert "unknown or revoked" in (field_error(bad.text, "admin_token") or "")
    assert "kpat_xxxx" not in bad.text  # the token typed is never echoed
    ok = await browser.submit(
        "/admin/login", "/admin/login", {"admin_token": browser.admin_token, "next": "/admin/audit"}
    )
    assert ok.status_code == 303
    assert ok.headers["location"] == "/admin/audit"
    cookie = ok.headers["set-cookie"]
    assert cookie.startswith("ks_admin=")
    assert "HttpOnly" in cookie
    assert "Path=/admin" in cookie
    assert "samesite=strict" in cookie.lower()
    assert browser.admin_token not in cookie  # sealed, not readable
    home = await browser.get("/admin/")
    assert home.status_code == 200
    assert "Overview" in home.text


async def test_forms_without_or_with_a_wrong_csrf_token_get_403(browser: Browser) -> None:
    await browser.admin_login()
    missing = await browser.client.post("/admin/providers/new", data={"provider_type": "okta", "name": "x"})
    assert missing.status_code == 403
    assert "This form could not be accepted" in missing.text
    wrong = await browser.client.post(
        "/admin/providers/new", data={"provider_type": "okta", "name": "x", "csrf_token": "0" * 64}
    )
    assert wrong.status_code == 403
    # a token from before sign-in (bound to the pre-session) is not valid in the session
    other = Browser(browser.client, browser.runtime, browser.admin_token)
    page = await other.get("/admin/providers/new?type=okta")
    assert page.status_code == 200
    assert (await browser.client.get("/admin/audit")).status_code == 200


async def test_login_form_csrf_is_bound_to_the_pre_session_cookie(browser: Browser) -> None:
    page = await browser.get("/admin/login")
    token = csrf_of(page.text)
    assert "ks_presession=" in page.headers["set-cookie"]
    browser.client.cookies.clear()
    response = await browser.client.post("/admin/login", data={"admin_token": browser.admin_token, "csrf_token": token})
    assert response.status_code == 403


async def test_create_provider_keeps_values_shows_errors_beside_fields_and_never_echoes_secrets(
    browser: Browser,
) -> None:
    await browser.admin_login()
    chooser = await browser.get("/admin/providers/new")
    assert "/admin/providers/new?type=rfc7591" in chooser.text
    bad = await browser.submit(
        "/admin/providers/new?type=http",
        "/admin/providers/new",
        {
            "provider_type": "http",
            "name": "Bridge",
            "issuer": "ftp://nope",
            "dcr_config.dcr_base_url": "https://bridge.example.com",
            "dcr_config.api_key": "short",
        },
    )
    assert bad.status_code == 400
    assert field_error(bad.text, "issuer")
    assert field_error(bad.text, "dcr_config.api_key")
    assert input_value(bad.text, "name") == "Bridge"
    assert input_value(bad.text, "dcr_config.dcr_base_url") == "https://bridge.example.com"
    assert 'value="short"' not in bad.text
    ok = await browser.submit(
        "/admin/providers/new?type=okta",
        "/admin/providers/new",
        {
            "provider_type": "okta",
            "name": "Okta prod",
            "issuer": "https://example.okta.com/oauth2/default",
            "dcr_config.dcr_token": "00SECRETtokenValue",
        },
    )
    assert ok.status_code == 303
    location = ok.headers["location"]
    assert "SECRET" not in location
    detail = await browser.get(location)
    assert detail.status_code == 200
    assert "Okta prod" in detail.text
    assert "00SECRETtokenValue" not in detail.text
    assert "Stored; leave blank to keep it." in detail.text
    listing = await browser.get("/admin/providers")
    assert "Okta prod" in listing.text
    # edit: blank secret keeps the stored one; a duplicate name is refused beside the field
    saved = await browser.submit(
        location, location, {"name": "Okta main", "issuer": "https://example.okta.com/oauth2/default"}
    )
    assert saved.status_code == 303
    assert "Okta main" in (await browser.get(location)).text


async def test_provider_verify_lists_each_check(browser: Browser) -> None:
    await browser.admin_login()
    created = await browser.submit(
        "/admin/providers/new?type=rfc7591",
        "/admin/providers/new",
        {"provider_type": "rfc7591", "name": "Local", "issuer": "http://127.0.0.1:9/issuer"},
    )
    assert created.status_code == 303
    url = created.headers["location"]
    result = await browser.submit(url, url + "/verify", {"trial_registration": "false"})
    assert result.status_code == 200
    assert "Verification:" in result.text
    assert "failed" in result.text
    assert re.search(r"<td>discovery</td>", result.text)


async def test_strategy_create_edit_and_errors(browser: Browser) -> None:
    await browser.admin_login()
    created = await browser.submit(
        "/admin/providers/new?type=rfc7591",
        "/admin/providers/new",
        {"provider_type": "rfc7591", "name": "Peer", "issuer": "https://idp.example.com"},
    )
    provider_id = created.headers["location"].rsplit("/", 1)[1]
    form = await browser.get("/admin/strategies/new")
    assert 'data-issuer="https://idp.example.com"' in form.text
    bad = await browser.submit(
        "/admin/strategies/new",
        "/admin/strategies/new",
        [
            ("name", "Peer CC"),
            ("display_name", "Client credentials"),
            ("strategy_type", "openid_connect"),
            ("dcr_provider_id", provider_id),
            ("credential_claim", "client_id"),
            ("scopes", "billing:read"),
            ("auth_methods", "session"),
            ("advanced", "{not json"),
        ],
    )
    assert bad.status_code == 400
    assert "not valid JSON" in (field_error(bad.text, "advanced") or "")
    assert input_value(bad.text, "scopes") == "billing:read"
    bad = await browser.submit(
        "/admin/strategies/new",
        "/admin/strategies/new",
        [
            ("name", "Peer CC"),
            ("display_name", "Client credentials"),
            ("strategy_type", "openid_connect"),
            ("dcr_provider_id", provider_id),
            ("credential_claim", ""),
            ("scopes", "billing:read"),
            ("auth_methods", "session"),
        ],
    )
    assert bad.status_code == 400
    assert field_error(bad.text, "auth_methods")
    assert field_error(bad.text, "credential_claim")
    assert input_value(bad.text, "name") == "Peer CC"
    ok = await browser.submit(
        "/admin/strategies/new",
        "/admin/strategies/new",
        [
            ("name", "Peer CC"),
            ("display_name", "Client credentials"),
            ("strategy_type", "openid_connect"),
            ("dcr_provider_id", provider_id),
            ("issuer", ""),
            ("credential_claim", "client_id, azp"),
            ("scopes", "billing:read, billing:write"),
            ("auth_methods", "client_credentials"),
            ("auth_methods", "bearer"),
            ("advanced", '{"audience": "billing"}'),
        ],
    )
    assert ok.status_code == 303, ok.text
    url = ok.headers["location"]
    page = await browser.get(url)
    assert input_value(page.text, "issuer") == "https://idp.example.com"  # prefilled from the provider
    assert input_value(page.text, "credential_claim") == "client_id, azp"
    assert "&#34;audience&#34;: &#34;billing&#34;" in page.text
    edited = await browser.submit(
        url,
        url,
        [
            ("name", "Peer CC"),
            ("display_name", "Client credentials v2"),
            ("dcr_provider_id", provider_id),
            ("issuer", "https://idp.example.com"),
            ("credential_claim", "client_id"),
            ("scopes", "billing:read"),
            ("auth_methods", "bearer"),
            ("advanced", ""),
        ],
    )
    assert edited.status_code == 303, edited.text
    page = await browser.get(url)
    assert input_value(page.text, "display_name") == "Client credentials v2"
    textarea = page.text.split('name="advanced"')[1].split("</textarea>")[0]
    assert "audience" not in textarea
    listing = await browser.get("/admin/strategies")
    assert "Client credentials v2" in listing.text
    audit = await browser.get("/admin/audit?action=auth_strategy")
    assert "auth_strategy.update" in audit.text
    assert "auth_strategy.create" in audit.text
    assert "dcr_provider.create" not in audit.text
    # "until" a day includes all of that day; "from" the next day finds nothing yet
    today = datetime.now(UTC).date()
    until_today = await browser.get(f"/admin/audit?action=auth_strategy&until={today}")
    assert "auth_strategy.update" in until_today.text
    until_yesterday = await browser.get(f"/admin/audit?action=auth_strategy&until={today - timedelta(days=1)}")
    assert "auth_strategy.update" not in until_yesterday.text
    from_tomorrow = await browser.get(f"/admin/audit?action=auth_strategy&since={today + timedelta(days=1)}")
    assert "auth_strategy.update" not in from_tomorrow.text
    assert (await browser.get("/admin/audit?until=9999-12-31")).status_code == 200  # the last day there is
    bad = await browser.get("/admin/audit?until=28/11/2026")
    assert bad.status_code == 400
    assert field_error(bad.text, "until") == "Give a date as YYYY-MM-DD, e.g. 2026-11-28"
    assert input_value(bad.text, "until") == "28/11/2026"


async def test_static_assets_and_unknown_assets(browser: Browser) -> None:
    css = await browser.get("/static/style.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert (await browser.get("/static/../app.py")).status_code == 404
    assert (await browser.get("/static/nope.css")).status_code == 404


async def test_a_tampered_or_expired_admin_session_is_no_session(browser: Browser) -> None:
    await browser.admin_login()
    sealed = browser.client.cookies.get("ks_admin", path="/admin")
    assert sealed
    assert (await browser.get("/admin/")).status_code == 200
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    browser.client.cookies.set("ks_admin", tampered, path="/admin")
    assert (await browser.get("/admin/")).status_code == 303
    expired = browser.runtime.vault.encrypt(
        json.dumps({"sid": "s", "tok": browser.admin_token, "exp": int(time.time()) - 1}),
        table="web_sessions",
        row_id="cookie",
        field="admin",
    )
    browser.client.cookies.set("ks_admin", expired, path="/admin")
    response = await browser.get("/admin/providers")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login")


async def test_sign_out_ends_the_page_session(browser: Browser) -> None:
    await browser.admin_login()
    out = await browser.submit("/admin/", "/admin/logout", {})
    assert out.status_code == 303
    assert 'ks_admin=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    assert (await browser.get("/admin/")).status_code == 303
