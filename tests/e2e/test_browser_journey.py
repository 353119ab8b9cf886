"""The whole journey of issue 7 in a real Chromium, against the real oidc-provider peer and a real gateway:
the admin creates a DCR provider for the peer, verifies it, creates a strategy, publishes a product and makes a
data-plane token; a developer signs up, creates an app, copies its secret, requests access; the admin approves;
the secret works at the gateway; the developer refreshes it (the old one stops working) and deletes the app."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from keystile.gateway.app import GatewayNode, GatewayOptions
from tests.e2e.conftest import LivePortal, admin_sign_in, check_page, last_mail_link, unique
from tests.fixtures.oidc_peer import OidcPeer
from tests.integration.gateway.servers import EchoUpstream

pytestmark = [pytest.mark.browser, pytest.mark.node, pytest.mark.xdist_group("browser")]


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def eventually(
    call: Callable[[], Awaitable[httpx.Response]], status: int, within: float = 10.0
) -> httpx.Response:
    """The gateway follows the control plane within about a second; wait for the expected answer."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        response = await call()
        if response.status_code == status or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.2)


async def test_issue_7_journey(chromium: Any, live_portal: LivePortal, oidc_peer: OidcPeer, tmp_path: Path) -> None:
    live = live_portal
    upstream = EchoUpstream()
    await upstream.start()
    admin_ctx = await chromium.new_context(base_url=live.url, viewport={"width": 1280, "height": 800})
    dev_ctx = await chromium.new_context(base_url=live.url, viewport={"width": 1280, "height": 800})
    await dev_ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    admin = await admin_ctx.new_page()
    dev = await dev_ctx.new_page()
    for tab in (admin, dev):
        tab.set_default_timeout(20_000)
    node: GatewayNode | None = None
    gateway: httpx.AsyncClient | None = None
    try:
        # -- admin: provider for the peer, verified ---------------------------------------------------------
        await admin_sign_in(admin, live)
        await admin.goto("/admin/providers/new?type=rfc7591")
        provider_name = unique("peer")
        await admin.get_by_label(re.compile(r"^Name( \*)?$")).fill(provider_name)
        await admin.get_by_label(re.compile(r"^Issuer URL")).fill(oidc_peer.issuer)
        await admin.get_by_label("Initial access token").fill(oidc_peer.rotating_iat)
        await admin.get_by_label("The server issues a new secret on an RFC 7592 PUT").check()
        await admin.get_by_role("button", name="Create provider").click()
        await admin.wait_for_url(re.compile(r"/admin/providers/[0-9a-f-]{36}$"))
        await admin.get_by_label("Also register and delete a throwaway client").check()
        await admin.get_by_role("button", name="Verify").click()
        heading = admin.get_by_role("heading", name=re.compile("Verification"))
        await heading.wait_for()
        assert "passed" in await heading.inner_text(), await admin.locator(".verify").inner_text()
        await check_page(admin, "journey-provider-verified")

        # -- admin: strategy; choosing the provider fills in its issuer ----------------------------------------
        await admin.goto("/admin/strategies/new")
        strategy_name = unique("peer-cc")
        await admin.get_by_label(re.compile(r"^Name( \*)?$")).fill(strategy_name)
        await admin.get_by_label(re.compile(r"^Display name")).fill("Client credentials")
        await admin.get_by_label(re.compile(r"^DCR provider")).select_option(label=f"{provider_name} (rfc7591)")
        assert await admin.get_by_label(re.compile(r"^Issuer URL")).input_value() == oidc_peer.issuer
        await admin.get_by_label(re.compile(r"^Credential claims")).fill("client_id")
        await admin.get_by_label(re.compile(r"^Scopes")).fill("read")
        await admin.get_by_label(re.compile("^Client credentials")).check()
        await admin.get_by_label(re.compile("^Bearer JWT")).check()
        await admin.get_by_label(re.compile(r"^Advanced configuration")).fill(
            json.dumps({"audience": oidc_peer.api_audience})
        )
        await admin.get_by_role("button", name="Create strategy").click()
        await admin.wait_for_url(re.compile(r"/admin/strategies/[0-9a-f-]{36}$"))
        await admin.get_by_role("button", name="Verify").click()
        await admin.get_by_role("heading", name=re.compile("Verification")).wait_for()
        await check_page(admin, "journey-strategy-verified")

        # -- admin: product, version routed to the upstream, published with the strategy ----------------------
        await admin.goto("/admin/products")
        product_name = unique("Ledger")
        await admin.get_by_label(re.compile(r"^Name( \*)?$")).fill(product_name)
        await admin.get_by_role("button", name="Create product").click()
        await admin.wait_for_url(re.compile(r"/admin/products/[0-9a-f-]{36}$"))
        route = f"/{product_name.lower()}/v1"
        await admin.get_by_label("Version name").fill("v1")
        await admin.get_by_label("Upstream URL").fill(upstream.url + "/api")
        await admin.get_by_label("Paths").fill(route)
        await admin.get_by_role("button", name="Create version").click()
        await admin.wait_for_url(re.compile(r"/versions/[0-9a-f-]{36}$"))
        publication = admin.locator("form", has=admin.get_by_role("button", name=re.compile("Save publication"))).first
        await publication.get_by_label("Status").select_option("published")
        await publication.get_by_label("Auth strategy").select_option(label=f"{strategy_name} (Client credentials)")
        await publication.get_by_label("Developers can request access").check()
        await publication.get_by_role("button", name=re.compile("Save publication")).click()
        await admin.get_by_text("The publication is saved.").wait_for()

        # -- admin: a data-plane token; the gateway follows the control plane with it ---------------------------
        await admin.goto("/admin/data-plane")
        await admin.get_by_label(re.compile(r"^Name( \*)?$")).fill(unique("edge"))
        await admin.get_by_role("button", name="Create token").click()
        dp_token = await admin.locator("#dp-token").input_value()
        node = GatewayNode(
            GatewayOptions(
                control_plane=live.url,
                token=dp_token,
                listen=("127.0.0.1", 0),
                status_listen=("127.0.0.1", 0),
                state_dir=tmp_path / "gateway",
                insecure_cookies=True,
                sync_wait=5,
            )
        )
        await node.start()
        gateway = httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.proxy_port}", timeout=10)

        # -- developer: sign up, confirm, set a password; the admin approves the account -----------------------
        address = f"{unique('dev')}@example.com"
        await dev.goto("/register")
        await dev.get_by_label(re.compile(r"^Full name")).fill("Jane Dev")
        await dev.get_by_label(re.compile(r"^Email")).fill(address)
        await dev.get_by_role("button", name="Create account").click()
        await dev.get_by_role("heading", name="Check your mail").wait_for()
        await dev.goto(last_mail_link(live.mail_dir, "/verify-email"))
        await dev.get_by_role("button", name="Confirm my email").click()
        await dev.get_by_label(re.compile(r"^Password( \*)?$")).fill("correct horse battery staple")
        await dev.get_by_label(re.compile(r"^Password again")).fill("correct horse battery staple")
        await dev.get_by_role("button", name="Save password").click()
        await dev.wait_for_url("**/login?reset=1")
        await admin.goto("/admin/developers?status=pending")
        row = admin.locator("tr", has_text=address)
        await row.get_by_role("button", name="Approve").click()
        await admin.wait_for_url(re.compile(r"/admin/developers\?portal="))
        await dev.get_by_label(re.compile(r"^Email")).fill(address)
        await dev.get_by_label(re.compile(r"^Password")).fill("correct horse battery staple")
        await dev.get_by_role("button", name="Sign in").click()
        await dev.wait_for_url("**/apps")

        # -- developer: finds the API, creates an app for it, copies the secret shown once ----------------------
        await dev.goto("/")
        await dev.get_by_role("link", name=product_name).click()
        await dev.get_by_role("link", name="Create an app for this API").click()
        await dev.get_by_label(re.compile(r"^App name")).fill("ledger-sync")
        await dev.get_by_role("button", name="Create app").click()
        await dev.get_by_role("heading", name="Store it now").wait_for()
        client_id = await dev.locator("#client-id").input_value()
        await dev.locator("button[data-copy=client-secret]").click()
        secret = await dev.evaluate("() => navigator.clipboard.readText()")
        assert secret and secret == await dev.locator("#client-secret").input_value()
        assert secret not in dev.url
        await check_page(dev, "journey-app-secret")
        assert "pending" in await dev.locator("main").inner_text()
        await dev.get_by_role("link", name="Proceed").click()
        await dev.wait_for_url(re.compile(r"/apps/[0-9a-f-]{36}$"))
        app_url = dev.url

        # not yet approved: the gateway refuses the call
        call = lambda creds: gateway.get(route + "/orders", headers=basic(client_id, creds))  # noqa: E731
        refused = await eventually(lambda: call(secret), 403)
        assert refused.status_code in (401, 403), refused.text

        # -- admin approves; the secret now works at the gateway -------------------------------------------------
        await admin.goto("/admin/registrations")
        await admin.locator("tr", has_text="ledger-sync").get_by_role("button", name="Approve").click()
        await admin.wait_for_url(re.compile(r"/admin/registrations\?"))
        ok = await eventually(lambda: call(secret), 200)
        assert ok.status_code == 200, ok.text
        assert upstream.requests[-1]["path"] == "/api/orders"

        # -- developer refreshes the secret: the new one works, the old one stops --------------------------------
        await dev.goto(app_url)
        dev.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await dev.get_by_role("button", name="Refresh the secret").click()
        await dev.get_by_role("heading", name="Store it now").wait_for()
        new_secret = await dev.locator("#client-secret").input_value()
        assert new_secret and new_secret != secret
        assert (await eventually(lambda: call(new_secret), 200)).status_code == 200
        assert (await eventually(lambda: call(secret), 401)).status_code == 401

        # -- developer deletes the app: the gateway refuses it -------------------------------------------------
        await dev.goto(app_url)
        await dev.get_by_label(re.compile("Yes, delete")).check()
        dev.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await dev.get_by_role("button", name="Delete app").click()
        await dev.wait_for_url("**/apps?deleted=1")
        gone = await eventually(lambda: call(new_secret), 401)
        assert gone.status_code in (401, 403), gone.text
    finally:
        if gateway is not None:
            await gateway.aclose()
        if node is not None:
            await node.stop()
        await admin_ctx.close()
        await dev_ctx.close()
        await upstream.stop()
