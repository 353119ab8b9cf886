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
