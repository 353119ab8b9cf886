"""Long polls wake within 1 s of a committed change, end in 401 within 1 s of a token's revocation, and share
one snapshot build per version (gateway.md §2.1), on databases whose commits are real."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from keystile.domain.snapshot import parse_snapshot
from keystile.services import catalog, dataplane
from keystile.services.context import SYSTEM
from tests.integration.dataplane.test_feed import feed_headers


async def _token(live) -> str:
    r = await live.client.post("/v2/data-plane/tokens", json={"name": f"gw-{uuid.uuid4().hex[:8]}"})
    assert r.status_code == 201, r.text
    return r.json()["token"]


async def _current(live, token: str) -> str:
    r = await live.client.get("/v2/data-plane/config", headers=feed_headers(token))
    assert r.status_code == 200
    return r.headers["etag"]


async def _hold(live, token: str, etag: str, wait: int = 10):
    started = time.monotonic()
    r = await live.client.get(
        f"/v2/data-plane/config?wait={wait}", headers=feed_headers(token, **{"If-None-Match": etag})
    )
    return r, time.monotonic() - started


async def _until_held(live) -> None:
    feed = dataplane.hub(live.runtime)
    for _ in range(200):
        if feed._waiters and feed.version is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the long poll was never held")


async def test_committed_change_wakes_a_held_poll_within_a_second(live):
    token = await _token(live)
    etag = await _current(live, token)
    held = asyncio.create_task(_hold(live, token, etag))
    await _until_held(live)
    changed_at = time.monotonic()
    r = await live.client.post("/v2/api-products", json={"name": "P"})
    product = r.json()
    r = await live.client.post(
        f"/v2/api-products/{product['id']}/product-versions",
        json={"name": "v1", "gateway_service": {"upstream_url": "http://u:1/", "paths": [f"/p{uuid.uuid4().hex}"]}},
    )
    assert r.status_code == 201
    response, _ = await held
    latency = time.monotonic() - changed_at
    assert response.status_code == 200
    assert response.headers["etag"] != etag
    assert latency < 1.0, latency
    snap = parse_snapshot(response.content)
    assert any(route.product_version_id == r.json()["id"] for route in snap.routes)


async def test_another_replica_commit_wakes_a_held_poll(live):
    if live.backend != "postgres":
        pytest.skip("SQLite runs a single control-plane replica")
    token = await _token(live)
    etag = await _current(live, token)
    held = asyncio.create_task(_hold(live, token, etag))
    await _until_held(live)
    feed = dataplane.hub(live.runtime)
    heard = feed.notifications
    other = live.replica()
    try:
        for _ in range(500):  # LISTEN runs before the commit, or the commit's NOTIFY reaches nobody
            if feed.listening:
                break
            await asyncio.sleep(0.01)
        assert feed.listening
        changed_at = time.monotonic()
        async with other.unit(SYSTEM) as ctx:
            product = await catalog.create_product(ctx, {"name": "Other replica"})
        async with other.unit(SYSTEM) as ctx:
            await catalog.create_version(
                ctx,
                uuid.UUID(product["id"]),
                {"name": "v1", "gateway_service": {"upstream_url": "http://u:1/", "paths": [f"/r{uuid.uuid4().hex}"]}},
            )
        response, _ = await held
        latency = time.monotonic() - changed_at
    finally:
        await other.close()
    assert response.status_code == 200
    assert latency < 1.0, latency
    assert feed.notifications > heard  # woken by NOTIFY, not by the one-second poll


async def test_revoked_token_ends_held_polls_within_a_second(live):
    r = await live.client.post("/v2/data-plane/tokens", json={"name": f"gw-{uuid.uuid4().hex[:8]}"})
    made = r.json()
    etag = await _current(live, made["token"])
    held = [asyncio.create_task(_hold(live, made["token"], etag, wait=20)) for _ in range(2)]
    await _until_held(live)
    revoked_at = time.monotonic()
    assert (await live.client.delete(f"/v2/data-plane/tokens/{made['id']}")).status_code == 204
    for task in held:
        response, _ = await task
        assert response.status_code == 401
    assert time.monotonic() - revoked_at < 1.0


async def test_waiters_share_one_build_per_version(live, monkeypatch):
    token = await _token(live)
    etag = await _current(live, token)
    builds = 0
    real = dataplane.build_snapshot

    async def counting(runtime):
        nonlocal builds
        builds += 1
        return await real(runtime)

    monkeypatch.setattr(dataplane, "build_snapshot", counting)
    held = [asyncio.create_task(_hold(live, token, etag)) for _ in range(5)]
    await _until_held(live)
    await live.client.post("/v2/api-products", json={"name": "Bump"})
    # a product alone does not move the version; a routed version does
    r = await live.client.get("/v2/api-products", params={"filter[name]": "Bump"})
    pid = r.json()["data"][0]["id"]
    await live.client.post(
        f"/v2/api-products/{pid}/product-versions",
        json={"name": "v1", "gateway_service": {"upstream_url": "http://u:1/", "paths": [f"/b{uuid.uuid4().hex}"]}},
    )
    bodies = set()
    for task in held:
        response, _ = await task
        assert response.status_code == 200
        bodies.add(response.content)
    assert len(bodies) == 1
    assert builds == 1
