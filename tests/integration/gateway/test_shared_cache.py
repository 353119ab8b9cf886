"""Gateways sharing client-credentials exchanges through a real Redis (contracts/gateway.md §5.3, `--redis-url`).

Each test uses a fresh `shared_cache_key`, so its Redis keys (HMAC-named under that key) are its own even on a Redis
shared with other tests and runs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from keystile.domain.snapshot import parse_snapshot
from keystile.gateway.exchange import ExchangeCache, SecretRejectedError
from keystile.gateway.idp import IdpClient
from keystile.gateway.metrics import GatewayMetrics
from keystile.gateway.shared import SharedTokens
from keystile.gateway.tables import build_config
from tests.conftest import missing_service
from tests.integration.gateway.conftest import PV_A, S_OIDC, StartGateway, World, basic
from tests.integration.gateway.servers import FakeIdp

REDIS_URL = os.environ.get("KEYSTILE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        missing_service(f"Redis at {REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.fixture
async def rds(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def _snapshot(world: World, key: bytes) -> dict[str, Any]:
    snap = world.build()
    snap["shared_cache_key"] = base64.b64encode(key).decode()
    return snap


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _status(gw: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await gw.status.get("/status")).json()
    return result


async def test_two_gateways_make_one_exchange_per_client(
    world: World, start_gateway: StartGateway, idp: FakeIdp, redis_url: str
) -> None:
    regs = [idp.register() for _ in range(3)]
    for i, reg in enumerate(regs):
        world.oidc_app(f"app-{i}", reg.client_id, [PV_A])
    snap = _snapshot(world, os.urandom(32))
    one = await start_gateway(snap, redis_url=redis_url)
    two = await start_gateway(snap, redis_url=redis_url)
    idp.token_delay = 0.3  # every gateway asks while the first exchange is still in flight
    calls = [gw.client.get("/a/x", headers={"Authorization": basic(reg)}) for reg in regs for gw in (one, two) * 10]
    answers = await asyncio.gather(*calls)
    assert [a.status_code for a in answers] == [200] * len(calls)
    assert idp.calls["token"] == len(regs)  # one exchange per client across both gateways
    for gw in (one, two):  # and the cache serves both from now on
        assert (await gw.client.get("/a/x", headers={"Authorization": basic(regs[0])})).status_code == 200
    assert idp.calls["token"] == len(regs)
    exchanged = [(await gw.idp_calls()).get("token", 0) for gw in (one, two)]
    assert sorted(exchanged) in ([0, 3], [1, 2])  # whichever won each lock
    assert (await _status(one))["shared_cache"] == "ok"


async def test_a_rejected_secret_is_shared_for_ten_seconds(
    world: World, start_gateway: StartGateway, idp: FakeIdp, redis_url: str
) -> None:
    reg = idp.register()
    world.oidc_app("app-cc", reg.client_id, [PV_A])
    snap = _snapshot(world, os.urandom(32))
    one = await start_gateway(snap, redis_url=redis_url)
    two = await start_gateway(snap, redis_url=redis_url)
    wrong = {"Authorization": basic(reg, secret="wrong")}
    assert (await one.client.get("/a/x", headers=wrong)).status_code == 401
    assert idp.calls["token"] == 1
    assert (await two.client.get("/a/x", headers=wrong)).status_code == 401
    assert idp.calls["token"] == 1  # the second gateway took the first one's rejection
    assert (await two.client.get("/a/x", headers={"Authorization": basic(reg)})).status_code == 200  # other secret
    assert idp.calls["token"] == 2


async def test_redis_holds_only_sealed_values_under_hmac_names(
    world: World, start_gateway: StartGateway, idp: FakeIdp, redis_url: str, rds: aioredis.Redis
) -> None:
    reg = idp.register()
    world.oidc_app("app-cc", reg.client_id, [PV_A])
    key = os.urandom(32)
    gw = await start_gateway(_snapshot(world, key), redis_url=redis_url)
    seen = await gw.client.get("/a/x", headers={"Authorization": basic(reg)})
    assert seen.status_code == 200
    access_token = next(v for k, v in seen.json()["headers"] if k.lower() == "authorization")[7:]
    name = SharedTokens.name(key, S_OIDC, reg.client_id, hashlib.sha256(reg.secret.encode()).digest())
    assert reg.client_id not in name and name.startswith("keystile:xc:")
    raw = await rds.get(name)
    assert raw is not None
    assert access_token.encode() not in raw and reg.client_id.encode() not in raw
    assert access_token.split(".")[1].encode() not in raw  # not even the claims
    ttl = await rds.pttl(name)
    assert 250_000 < ttl <= 300_000  # it expires with the token (expires_in 300)

    # the same value moved under another name, or sealed under another key, is never used
    reg2 = idp.register()
    world.oidc_app("app-2", reg2.client_id, [PV_A])
    gw2 = await start_gateway(_snapshot(world, key), redis_url=redis_url)
    name2 = SharedTokens.name(key, S_OIDC, reg2.client_id, hashlib.sha256(reg2.secret.encode()).digest())
    await rds.set(name2, raw, px=60_000)
    before = idp.calls["token"]
    assert (await gw2.client.get("/a/x", headers={"Authorization": basic(reg2)})).status_code == 200
    assert idp.calls["token"] == before + 1
    metrics = (await gw2.status.get("/metrics")).text
    assert 'cache="shared_exchange",event="invalid"' in metrics


async def test_without_redis_each_gateway_caches_alone(world: World, start_gateway: StartGateway, idp: FakeIdp) -> None:
    """Redis down (nothing listens on its port): no request fails, each gateway exchanges once for itself."""
    reg = idp.register()
    world.oidc_app("app-cc", reg.client_id, [PV_A])
    snap = _snapshot(world, os.urandom(32))
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    one = await start_gateway(snap, redis_url=url)
    two = await start_gateway(snap, redis_url=url)
    for gw in (one, two, one, two):
        assert (await gw.client.get("/a/x", headers={"Authorization": basic(reg)})).status_code == 200
    assert idp.calls["token"] == 2
    assert (await _status(one))["shared_cache"] == "down"
    assert 'cache="shared_exchange",event="error"' in (await one.status.get("/metrics")).text


async def test_a_token_from_before_a_secret_rotation_is_not_taken(
    world: World, start_gateway: StartGateway, idp: FakeIdp, redis_url: str
) -> None:
    reg = idp.register()
    world.oidc_app("app-cc", reg.client_id, [PV_A])
    key = os.urandom(32)
    one = await start_gateway(_snapshot(world, key), redis_url=redis_url)
    assert (await one.client.get("/a/x", headers={"Authorization": basic(reg)})).status_code == 200
    await asyncio.sleep(0.01)
    world.apps.clear()
    world.oidc_app("app-cc", reg.client_id, [PV_A], not_before=datetime.now(UTC).isoformat())
    two = await start_gateway(_snapshot(world, key), redis_url=redis_url)
    assert (await two.client.get("/a/x", headers={"Authorization": basic(reg)})).status_code == 200
    assert idp.calls["token"] == 2  # the shared token predates credentials_not_before: exchanged anew


async def test_refresh_ahead_happens_once_across_gateways(world: World, idp: FakeIdp, redis_url: str) -> None:
    """Two gateways' caches on one clock: past 80 % of the lifetime the first refreshes, the second takes it."""
    idp.expires_in = 1000
    reg = idp.register()
    world.oidc_app("app-cc", reg.client_id, [PV_A])
    key = os.urandom(32)
    config = build_config(parse_snapshot(_encode(_snapshot(world, key))), "file")
    strategy, app = config.strategies[S_OIDC], config.client_ids[(S_OIDC, reg.client_id)]
    now = [datetime.now(UTC).timestamp()]

    def clock() -> float:
        return now[0]

    async with httpx.AsyncClient() as http:
        caches = []
        for _ in range(2):
            metrics = GatewayMetrics()
            shared = SharedTokens(redis_url, metrics, clock=clock)
            caches.append((ExchangeCache(IdpClient(http, metrics), metrics, clock=clock, shared=shared), shared))
        (a, shared_a), (b, shared_b) = caches
        try:
            first, _ = await a.token(strategy, app, reg.client_id, reg.secret, shared_key=key)
            assert (await b.token(strategy, app, reg.client_id, reg.secret, shared_key=key))[0] == first
            assert idp.calls["token"] == 1
            now[0] += 810  # past refresh_at (80 % of 1000 s), well before expiry
            assert (await a.token(strategy, app, reg.client_id, reg.secret, shared_key=key))[0] == first
            await _settle(a)
            assert idp.calls["token"] == 2  # a refreshed in the background
            assert (await b.token(strategy, app, reg.client_id, reg.secret, shared_key=key))[0] == first
            await _settle(b)
            assert idp.calls["token"] == 2  # b took a's new token instead of refreshing too
            renewed, _ = await b.token(strategy, app, reg.client_id, reg.secret, shared_key=key)
            assert renewed != first
            with pytest.raises(SecretRejectedError):
                await a.token(strategy, app, reg.client_id, "wrong", shared_key=key)
            with pytest.raises(SecretRejectedError):
                await b.token(strategy, app, reg.client_id, "wrong", shared_key=key)
            assert idp.calls["token"] == 3
        finally:
            await shared_a.close()
            await shared_b.close()


def _encode(snapshot: dict[str, Any]) -> bytes:
    import json

    return json.dumps(snapshot).encode()


async def _settle(cache: ExchangeCache) -> None:
    """Wait for the background refreshes a cache started."""
    pending = list(cache._inflight.values())
    if pending:
        await asyncio.wait(pending)
