"""Registrations (portal-api.md §6, management-api.md §5): the version rules, 409 on a duplicate, auto-approval,
admin decisions that move the config version, and `add_registration` / `remove_registration` pushed to an HTTP
bridge from the outbox, in order."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from keystile.services import installation, outbox
from keystile.services.context import SYSTEM
from keystile.store.models import Application, IdpOperation, Portal
from tests.integration.outbox.world import World, make_world, operations, publish_version

from .test_applications import KEY_AUTH, seed_app


async def version_now(runtime) -> int:
    async with runtime.unit(SYSTEM) as ctx:
        return await installation.config_version(ctx)


async def setup(api, **kw):
    world = await make_world(api.runtime, api.client, provider=None, strategy=KEY_AUTH, **kw)
    app = (await api.client.post("/api/v2/applications", json={"name": "a"}, headers=world.as_dev())).json()
    return world, f"/api/v2/applications/{app['id']}/registrations", app


async def test_pending_until_an_admin_approves(api):
    world, base, app = await setup(api)
    h = world.as_dev()
    before = await version_now(api.runtime)
    r = await api.client.post(base, json={"product_version_id": str(world.version_id)}, headers=h)
    assert r.status_code == 201, r.text
    reg = r.json()
    assert reg["status"] == "pending"
    assert reg["application_id"] == app["id"]
    assert reg["product_version_id"] == str(world.version_id)
    assert reg["product_id"] == str(world.product_id)
    assert reg["product_version_name"] == "v1"
    assert r.headers["location"] == f"{base}/{reg['id']}"
    assert await version_now(api.runtime) == before  # pending lets nothing through
    dup = await api.client.post(base, json={"product_version_id": str(world.version_id)}, headers=h)
    assert dup.status_code == 409

    admin_path = f"/v2/portals/{world.portal_id}/applications/{app['id']}/registrations/{reg['id']}"
    listed = await api.client.get(
        f"/v2/portals/{world.portal_id}/application-registrations", params={"filter[status]": "pending"}
    )
    assert [x["id"] for x in listed.json()["data"]] == [reg["id"]]
    assert listed.json()["data"][0]["developer"] == {"id": str(world.dev.developer_id), "name": "Jane Dev"}
    ok = await api.client.patch(admin_path, json={"status": "approved"})
    assert ok.status_code == 200
    assert ok.json()["status"] == "approved"
    assert await version_now(api.runtime) == before + 1
    same = await api.client.patch(admin_path, json={"status": "approved"})
    assert same.status_code == 200
    assert await version_now(api.runtime) == before + 1
    revoked = await api.client.patch(admin_path, json={"status": "revoked"})
    assert revoked.json()["status"] == "revoked"
    assert await version_now(api.runtime) == before + 2
    bad = await api.client.patch(admin_path, json={"status": "maybe"})
    assert bad.status_code == 400
    assert bad.json()["invalid_parameters"][0]["rule"] == "enum"

    got = await api.client.get(f"{base}/{reg['id']}", headers=h)
    assert got.json()["status"] == "revoked"
    assert (await api.client.delete(f"{base}/{reg['id']}", headers=h)).status_code == 204
    again = await api.client.post(base, json={"product_version_id": str(world.version_id)}, headers=h)
    assert again.status_code == 201  # a developer may ask again after withdrawing


@pytest.mark.parametrize("where", ["portal", "version"])
async def test_auto_approval(api, where):
    world, base, _ = await setup(api, auto_approve=where == "version")
    if where == "portal":
        async with api.runtime.sessions() as session:
            await session.execute(
                update(Portal).where(Portal.id == world.portal_id).values(auto_approve_applications=True)
            )
            await session.commit()
    before = await version_now(api.runtime)
    r = await api.client.post(base, json={"product_version_id": str(world.version_id)}, headers=world.as_dev())
    assert r.json()["status"] == "approved"
    assert await version_now(api.runtime) == before + 1


async def test_version_rules(api):
    world, base, _ = await setup(api)
    h = world.as_dev()
    unknown = await api.client.post(base, json={"product_version_id": str(uuid.uuid4())}, headers=h)
    assert unknown.status_code == 400
    assert unknown.json()["invalid_parameters"][0]["rule"] == "missing_reference"
    _, closed = await publish_version(api.runtime, world.portal_id, None, name="closed")
    no_reg = await api.client.post(base, json={"product_version_id": str(closed)}, headers=h)
    assert no_reg.status_code == 400
    assert no_reg.json()["invalid_parameters"][0]["rule"] == "missing_reference"
    other = await api.client.post(
        "/v2/application-auth-strategies", json={**KEY_AUTH, "name": "other keys", "display_name": "Partner keys"}
    )
    _, mismatched = await publish_version(api.runtime, world.portal_id, other.json()["id"], name="partner")
    wrong = await api.client.post(base, json={"product_version_id": str(mismatched)}, headers=h)
    assert wrong.status_code == 400
    [item] = wrong.json()["invalid_parameters"]
    assert item["rule"] == "invalid"
    assert "'Partner keys'" in item["reason"]
    assert "'API key'" in item["reason"]
    scoped = await api.client.post(
        base, json={"product_version_id": str(world.version_id), "scopes": ["read"]}, headers=h
    )
    assert scoped.status_code == 400
    assert scoped.json()["invalid_parameters"][0]["field"] == "scopes"


BRIDGE = "https://bridge.test/dcr"
BRIDGE_KEY = "bridge_key_0123456789"


@contextlib.asynccontextmanager
async def bridge_world(
    api, handler: Callable[[httpx.Request], httpx.Response], *, apps: int = 1, **dcr_config: Any
) -> AsyncIterator[tuple[World, list[uuid.UUID]]]:
    """A world on an HTTP DCR bridge answered by `handler`, with `apps` applications bound to it as clients
    `client-1`, `client-2`, …"""
    original = api.runtime.http
    api.runtime.http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    try:
        provider = {
            "name": "bridge",
            "provider_type": "http",
            "issuer": "https://idp.test",
            "dcr_config": {"dcr_base_url": BRIDGE, "api_key": BRIDGE_KEY, **dcr_config},
        }
        world = await make_world(api.runtime, api.client, provider=provider)
        ids = [await seed_app(api.runtime, world) for _ in range(apps)]
        async with api.runtime.sessions() as session:
            for i, app_id in enumerate(ids, start=1):
                await session.execute(
                    update(Application)
                    .where(Application.id == app_id)
                    .values(dcr_provider_id=uuid.UUID(world.provider_id), reference_id=f"client-{i}")
                )
            await session.commit()
        yield world, ids
    finally:
        await api.runtime.http.aclose()
        api.runtime.http = original


async def test_registration_events_reach_an_http_bridge_from_the_outbox_in_order(api):
    received: list[dict] = []

    def bridge(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert request.url == f"{BRIDGE}/client-1/event-hook"
        assert request.headers["x-api-key"] == BRIDGE_KEY
        received.append(json.loads(request.content))
        return httpx.Response(200, json={})

    async with bridge_world(api, bridge) as (world, [app_id]):
        base = f"/api/v2/applications/{app_id}/registrations"
        reg = (
            await api.client.post(base, json={"product_version_id": str(world.version_id)}, headers=world.as_dev())
        ).json()
        admin = f"/v2/portals/{world.portal_id}/application-registrations/{reg['id']}"
        assert (await api.client.patch(admin, json={"status": "approved"})).status_code == 200
        assert (await api.client.patch(admin, json={"status": "rejected"})).status_code == 200
        ops = await operations(api.runtime)
        assert [o.payload["event_type"] for o in ops] == ["add_registration", "remove_registration"]
        assert received == []  # nothing is pushed inside the admin's request
        # one pass runs only the oldest event of an application; the next pass the following one
        assert await outbox.run_due(api.runtime) == 1
        assert await outbox.run_due(api.runtime) == 1
        assert [e["event_type"] for e in received] == ["add_registration", "remove_registration"]
        assert received[0]["application_id"] == str(app_id)
        assert received[0]["api_product_version_id"] == str(world.version_id)
        assert await operations(api.runtime) == []


async def test_a_dcr_patch_is_pushed_to_the_bridge_from_the_outbox_and_never_fails_the_patch(api):
    received: list[dict] = []
    up = {"value": False}

    def bridge(request: httpx.Request) -> httpx.Response:
        assert request.url == f"{BRIDGE}/client-1/event-hook"
        if not up["value"]:
            raise httpx.ConnectError("connection refused", request=request)
        received.append(json.loads(request.content))
        return httpx.Response(200, json={})

    async with bridge_world(api, bridge, disable_refresh_secret=True) as (world, [app_id]):
        patched = await api.client.patch(
            f"/api/v2/applications/{app_id}",
            json={"name": "renamed", "redirect_uri": "https://app.example.com/cb"},
            headers=world.as_dev(),
        )
        assert patched.status_code == 200, patched.text
        assert "credentials" not in patched.json()
        [op] = await operations(api.runtime)
        assert op.payload["event_type"] == "update_application"
        assert await outbox.run_due(api.runtime) == 1  # the bridge is down: the entry waits, the PATCH stood
        [op] = await operations(api.runtime)
        assert (op.status, op.attempts) == ("pending", 1)
        up["value"] = True
        async with api.runtime.sessions() as session:
            await session.execute(update(IdpOperation).values(next_attempt_at=datetime.now(UTC)))
            await session.commit()
        assert await outbox.run_due(api.runtime) == 1
        [event] = received
        assert event["event_type"] == "update_application"
        assert event["application_name"] == "renamed"
        assert event["redirect_uris"] == ["https://app.example.com/cb"]
        refresh = await api.client.post(f"/api/v2/applications/{app_id}/refresh-token", headers=world.as_dev())
        assert refresh.status_code == 400  # disable_refresh_secret
        assert refresh.json()["invalid_parameters"][0]["field"] == "auth_strategy_id"


async def test_applications_of_a_product_version(api):
    world, base, app = await setup(api)
    h = world.as_dev()
    path = f"/api/v2/products/{world.product_id}/versions/{world.version_id}/applications"
    unregistered = await api.client.get(path, params={"unregistered": "true"}, headers=h)
    assert unregistered.status_code == 200, unregistered.text
    assert [a["id"] for a in unregistered.json()["data"]] == [app["id"]]
    assert unregistered.json()["data"][0]["registration_id"] is None
    assert (await api.client.get(path, headers=h)).json()["data"] == []
    reg = (await api.client.post(base, json={"product_version_id": str(world.version_id)}, headers=h)).json()
    listed = (await api.client.get(path, headers=h)).json()
    assert listed["meta"]["page"]["total"] == 1
    item = listed["data"][0]
    assert (item["id"], item["registration_id"], item["registration_status"]) == (app["id"], reg["id"], "pending")
    assert item["auth_strategy"]["credential_type"] == "key_auth"
    assert (await api.client.get(path, params={"filter[status]": "approved"}, headers=h)).json()["data"] == []
    # another developer sees none of it; an unpublished or unknown version is 404
    assert (await api.client.get(path, headers=world.as_dev(world.other))).json()["data"] == []
    assert (await api.client.get(path)).status_code == 401
    missing = f"/api/v2/products/{world.product_id}/versions/{uuid.uuid4()}/applications"
    assert (await api.client.get(missing, headers=h)).status_code == 404


@pytest.mark.parametrize("what", ["version", "product"])
async def test_a_forced_delete_announces_each_approved_registration_to_the_bridge(api, what: str) -> None:
    """`?force=true` on a product or version deletes its registrations in bulk; a provider that acts on
    `remove_registration` still hears of each approved one (a pending one was never announced)."""
    received: list[dict] = []

    def bridge(request: httpx.Request) -> httpx.Response:
        received.append(json.loads(request.content))
        return httpx.Response(200, json={})

    async with bridge_world(api, bridge, apps=3) as (world, apps):
        for i, app_id in enumerate(apps):
            reg = (
                await api.client.post(
                    f"/api/v2/applications/{app_id}/registrations",
                    json={"product_version_id": str(world.version_id)},
                    headers=world.as_dev(),
                )
            ).json()
            if i < 2:  # two approved, one left pending
                admin = f"/v2/portals/{world.portal_id}/application-registrations/{reg['id']}"
                assert (await api.client.patch(admin, json={"status": "approved"})).status_code == 200
        while await outbox.run_due(api.runtime):
            pass
        assert [e["event_type"] for e in received] == ["add_registration"] * 2
        version = await api.client.get(f"/v2/api-products/{world.product_id}/product-versions/{world.version_id}")
        assert version.status_code == 200, version.text
        url = f"/v2/api-products/{world.product_id}"
        if what == "version":
            url += f"/product-versions/{world.version_id}"
        assert (await api.client.delete(url)).status_code == 409  # registrations hold it without force
        assert (await api.client.delete(url, params={"force": "true"})).status_code == 204
        while await outbox.run_due(api.runtime):
            pass
        removed = [e for e in received if e["event_type"] == "remove_registration"]
        assert sorted(e["application_id"] for e in removed) == sorted(str(a) for a in apps[:2])
        assert {e["api_product_version_id"] for e in removed} == {str(world.version_id)}
        assert await operations(api.runtime) == []
