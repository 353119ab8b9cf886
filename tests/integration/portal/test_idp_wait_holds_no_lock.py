"""While keystile waits on a slow IdP (creating an application, refreshing its secret, adding a second secret, a
PATCH that rotates the secret, verifying a provider, an outbox entry), the rest of the control plane keeps writing: on
SQLite an open transaction during the wait held the database's write lock, so every other write waited on it and then
failed ("database unavailable").

A real control plane on a SQLite file (no shared test connection), the built-in IdP as an `rfc7591` provider, and
a gate in front of the IdP that holds the request under test until the test has written something else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.pool import NullPool

from keystile.app import create_app
from keystile.services import admin_tokens, installation
from keystile.services.context import SYSTEM, Runtime
from keystile.settings import Settings
from keystile.store import migrate
from keystile.store.db import create_engine, session_factory
from keystile.store.models import ThrottleEvent
from keystile.store.vault import Vault
from tests.database import TEST_KEY
from tests.integration.outbox.world import World, make_world


class Gate(httpx.AsyncBaseTransport):
    """Passes requests to the IdP; one whose method and path match is held until `opened`."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.match: tuple[str, str] | None = None
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.match and request.method == self.match[0] and request.url.path.startswith(self.match[1]):
            self.reached.set()
            await self.opened.wait()
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Scene:
    def __init__(self, rt: Runtime, client: httpx.AsyncClient, gate: Gate, world: World) -> None:
        self.rt, self.client, self.gate, self.world = rt, client, gate, world

    async def held(self, method: str, path: str, call: Any) -> httpx.Response:
        """Run `call()` with the IdP request `method path…` held; meanwhile another write must commit at once."""
        self.gate.match, self.gate.reached, self.gate.opened = (method, path), asyncio.Event(), asyncio.Event()
        task = asyncio.ensure_future(call())
        await asyncio.wait_for(self.gate.reached.wait(), 10)
        async with self.rt.unit(SYSTEM) as ctx:  # busy_timeout is 10 s: a held lock would make this wait, then fail
            ctx.session.add(ThrottleEvent(key="another request"))
            await asyncio.wait_for(ctx.session.commit(), 3)
        self.gate.opened.set()
        self.gate.match = None
        return await task


@pytest.fixture
async def scene(tmp_path: Path, builtin_idp: Any) -> AsyncIterator[Scene]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"
    settings = Settings(data_dir=tmp_path, database_url=url)
    engine = create_engine(url, poolclass=NullPool)
    gate = Gate()
    rt = Runtime(settings, engine, session_factory(engine), Vault(TEST_KEY), httpx.AsyncClient(transport=gate))
    await migrate.upgrade(engine)
    await installation.ensure(rt)
    token = (await admin_tokens.create(rt, "test"))[1]
    app = create_app(settings, runtime=rt)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        provider = {
            "name": "builtin",
            "provider_type": "rfc7591",
            "issuer": builtin_idp.issuer,
            "dcr_config": {
                "registration_endpoint": f"{builtin_idp.issuer}/register",
                "initial_access_token": builtin_idp.rotating_iat,
                "rotates_secret_on_put": True,
            },
        }
        world = await make_world(rt, client, provider=provider)
        yield Scene(rt, client, gate, world)
    await rt.close()


async def test_a_slow_idp_blocks_no_other_write(scene: Scene) -> None:
    client, dev = scene.client, scene.world.as_dev()
    created = await scene.held(
        "POST", "/register", lambda: client.post("/api/v2/applications", json={"name": "slow"}, headers=dev)
    )
    assert created.status_code == 201, created.text
    app_id = created.json()["id"]
    refreshed = await scene.held(
        "PUT", "/register", lambda: client.post(f"/api/v2/applications/{app_id}/refresh-token", headers=dev)
    )
    assert refreshed.status_code == 201, refreshed.text
    verified = await scene.held(
        "GET", "/.well-known", lambda: client.post(f"/v2/dcr-providers/{scene.world.provider_id}/verify")
    )
    assert verified.status_code == 200, verified.text
    # a redirect change on a provider that rotates on PUT calls the IdP in the request, no change pending meanwhile
    patched = await scene.held(
        "PUT",
        "/register",
        lambda: client.patch(
            f"/api/v2/applications/{app_id}",
            json={"name": "slow v2", "redirect_uri": "https://app.example.com/callback"},
            headers=dev,
        ),
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["redirect_uri"]) == ("slow v2", "https://app.example.com/callback")
    assert body["credentials"]["client_secret"]
    again = await client.get(f"/api/v2/applications/{app_id}", headers=dev)
    assert (again.json()["name"], again.json()["redirect_uri"]) == ("slow v2", "https://app.example.com/callback")
    # the outbox (here the delete's deregister, run at once in the request) waits on the IdP with nothing open too
    deleted = await scene.held(
        "DELETE", "/register", lambda: client.delete(f"/api/v2/applications/{app_id}", headers=dev)
    )
    assert deleted.status_code == 204, deleted.text
    assert (await client.get(f"/v2/applications/{app_id}")).status_code == 404  # the IdP agreed: the row is gone


async def test_an_entry_being_carried_out_cannot_be_retried_or_given_up(scene: Scene) -> None:
    """With no transaction holding the entry while the IdP is waited on, an admin's retry or give-up in that moment
    is refused (409) instead of running the entry twice or deleting it under the runner."""
    client, dev = scene.client, scene.world.as_dev()
    created = await client.post("/api/v2/applications", json={"name": "held"}, headers=dev)
    app_id = created.json()["id"]
    scene.gate.match, scene.gate.reached, scene.gate.opened = ("DELETE", "/register"), asyncio.Event(), asyncio.Event()
    deleting = asyncio.ensure_future(client.delete(f"/api/v2/applications/{app_id}", headers=dev))
    await asyncio.wait_for(scene.gate.reached.wait(), 10)
    [op] = (await client.get("/v2/idp-operations")).json()["data"]
    retried = await client.post(f"/v2/idp-operations/{op['id']}/retry")
    assert retried.status_code == 409, retried.text
    assert "being carried out now" in retried.json()["detail"]
    given_up = await client.delete(f"/v2/idp-operations/{op['id']}")
    assert given_up.status_code == 409, given_up.text
    scene.gate.opened.set()
    scene.gate.match = None
    assert (await deleting).status_code == 204
    assert (await client.get("/v2/idp-operations")).json()["data"] == []  # carried out once, then gone
    assert (await client.get(f"/v2/applications/{app_id}")).status_code == 404
