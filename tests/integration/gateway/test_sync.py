"""Config sync against a fake feed that follows contracts/gateway.md §2.1 (long poll, ETag, token)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import AsyncIterator

import pytest

from tests.integration.gateway.conftest import PV_A, World
from tests.integration.gateway.servers import FakeFeed

TOKEN = "kdp_" + "t" * 43


@pytest.fixture
async def feed() -> AsyncIterator[FakeFeed]:
    server = FakeFeed(TOKEN)
    await server.start()
    yield server
    await server.stop()


async def _eventually(check, limit: float = 2.0) -> float:
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > limit:
            raise AssertionError(f"not within {limit} s")
        await asyncio.sleep(0.02)


async def test_sync_applies_changes_within_two_seconds(world: World, start_gateway, feed: FakeFeed, tmp_path) -> None:
    world.key_app("app-key", "k-secret", [PV_A])
    gw = await start_gateway(None, control_plane=feed.url, token=TOKEN)
    # nothing loaded yet: 503 and not ready
    early = await gw.client.get("/a/x", headers={"apikey": "k-secret"})
    assert (early.status_code, early.json(), early.headers["retry-after"]) == (
        503,
        {"message": "No configuration loaded yet"},
        "5",
    )
    assert (await gw.status.get("/status/ready")).status_code == 503
    feed.publish(world.build())

    async def allowed() -> bool:
        return (await gw.client.get("/a/x", headers={"apikey": "k-secret"})).status_code == 200

    await _eventually(allowed, limit=5.0)  # the first poll backs off (1 s, full jitter) after the 503
    status = (await gw.status.get("/status")).json()
    assert (status["config_version"], status["config_source"]) == (1, "control_plane")
    # revoke the registration: visible through the long poll within 2 s
    world.version = 2
    world.registrations["app-key"] = []
    feed.publish(world.build())

    async def refused() -> bool:
        return (await gw.client.get("/a/x", headers={"apikey": "k-secret"})).status_code == 403

    assert await _eventually(refused, limit=2.0) < 2.0
    # the request carried the token, the ETag and the node headers
    last = feed.requests[-1]
    assert last["Authorization"] == f"Bearer {TOKEN}"
    assert last["If-None-Match"] == '"2"'
    assert last["User-Agent"].startswith("keystile-gateway/")
    node_id = (tmp_path / "state" / "node-id").read_text().strip()
    assert last["X-Keystile-Node-Id"] == node_id
    assert last["X-Keystile-Node-Hostname"]
    state = tmp_path / "state" / "config.json"
    assert json.loads(state.read_text())["version"] == 2
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600


async def test_control_plane_away_keeps_serving_and_restarts_from_file(
    world: World, start_gateway, feed: FakeFeed
) -> None:
    world.key_app("app-key", "k-secret", [PV_A])
    feed.publish(world.build())
    gw = await start_gateway(None, control_plane=feed.url, token=TOKEN)

    async def allowed() -> bool:
        return (await gw.client.get("/a/x", headers={"apikey": "k-secret"})).status_code == 200

    await _eventually(allowed)
    await feed.stop()
    await asyncio.sleep(0.3)
    for _ in range(5):
        assert (await gw.client.get("/a/x", headers={"apikey": "k-secret"})).status_code == 200
    await gw.node.stop(grace=1.0)
    # a new gateway on the same state dir while the control plane is still away
    again = await start_gateway(None, control_plane=feed.url, token=TOKEN)
    assert (await again.client.get("/a/x", headers={"apikey": "k-secret"})).status_code == 200
    status = (await again.status.get("/status")).json()
    assert (status["config_version"], status["config_source"]) == (1, "last_known_good")
    assert (await again.status.get("/status/ready")).status_code == 200


async def test_wrong_token_keeps_current_config(world: World, start_gateway, feed: FakeFeed) -> None:
    world.key_app("app-key", "k-secret", [PV_A])
    feed.publish(world.build())
    gw = await start_gateway(None, control_plane=feed.url, token="kdp_wrong")
    await asyncio.sleep(0.3)
    assert gw.node.config_version is None
    assert all(r["Authorization"] == "Bearer kdp_wrong" for r in feed.requests)


async def test_unusable_snapshot_is_refused_and_counted(world: World, start_gateway, feed: FakeFeed) -> None:
    world.key_app("app-key", "k-secret", [PV_A])
    feed.publish(world.build())
    gw = await start_gateway(None, control_plane=feed.url, token=TOKEN)

    async def loaded() -> bool:
        return gw.node.config_version == 1

    await _eventually(loaded)
    broken = world.build()
    broken["format_version"] = 2
    broken["version"] = 2
    feed.publish(broken)

    async def rejected() -> bool:
        return "keystile_gateway_config_rejected_total 1.0" in (await gw.status.get("/metrics")).text

    await _eventually(rejected)
    assert gw.node.config_version == 1
    assert (await gw.client.get("/a/x", headers={"apikey": "k-secret"})).status_code == 200
