"""The Portal API dependencies other routers build on (api/portal/auth.py) and tests/portal_helpers.py."""

from __future__ import annotations

import httpx

from keystile.app import create_app
from tests.portal_helpers import approved_developer, ensure_default_portal


async def test_helper_developer_authenticates_by_bearer_and_cookie(runtime):
    await ensure_default_portal(runtime)
    dev = await approved_developer(runtime, email="Helper@Example.com", full_name="Helper Dev")
    app = create_app(runtime.settings, runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        by_bearer = await client.get("/api/v2/developer/me", headers=dev.bearer)
        assert by_bearer.status_code == 200, by_bearer.text
        assert by_bearer.json()["id"] == str(dev.developer_id)
        assert by_bearer.json()["email"] == "helper@example.com"
        client.cookies.set("portalaccesstoken", dev.access_token)
        by_cookie = await client.get("/api/v2/developer/me")
        assert by_cookie.status_code == 200
        client.cookies.clear()
        anonymous = await client.get("/api/v2/developer/me")
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"] == "application/problem+json"
        wrong = await client.get("/api/v2/developer/me", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401


async def test_developer_ctx_guards_cookie_writes_and_audits_refusals(portal_env):
    """`developer_ctx` on another router's write (DELETE /api/v2/applications/{id}): cookie without
    X-Requested-With → 403 CSRF; a refused write (404) is audited as the developer's failure."""
    import uuid

    env = portal_env
    dev = await approved_developer(env.runtime, full_name="Cookie Dev")
    missing = uuid.uuid4()
    r = await env.client.delete(f"/api/v2/applications/{missing}", headers=dev.cookie_header)
    assert r.status_code == 403
    assert r.json()["detail"].startswith("CSRF check failed")
    r = await env.client.delete(
        f"/api/v2/applications/{missing}", headers={**dev.cookie_header, **dev.csrf_headers, "Origin": "https://x.test"}
    )
    assert r.status_code == 403
    r = await env.client.delete(f"/api/v2/applications/{missing}", headers={**dev.cookie_header, **dev.csrf_headers})
    assert r.status_code == 404
    r = await env.client.delete(f"/api/v2/applications/{missing}", headers=dev.bearer)  # Bearer: exempt
    assert r.status_code == 404
    events = (await env.admin.get("/v2/audit-logs", params={"filter[actor_id]": str(dev.developer_id)})).json()["data"]
    assert [(e["outcome"], e["status_code"], e["actor"]["name"]) for e in events] == [
        ("failure", 404, "Cookie Dev"),
        ("failure", 404, "Cookie Dev"),
    ]
