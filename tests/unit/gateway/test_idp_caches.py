"""JWKS cache (§5.7) and client-credentials exchange cache (§5.3), against httpx.MockTransport IdPs."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
from joserfc.jwk import RSAKey

from keystile.domain.snapshot import OidcSettings, OpenIdConnectStrategy
from keystile.gateway.exchange import ExchangeCache, SecretRejectedError
from keystile.gateway.idp import IdpClient, IdpUnavailableError
from keystile.gateway.metrics import GatewayMetrics
from keystile.gateway.tables import AppEntry, _compile_strategy
from keystile.oidc.jwks import JwksCache, JwksUnavailableError, cache_lifetime

ISS = "https://idp.test"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_cache_lifetime_clamped() -> None:
    assert cache_lifetime({}) == 3600
    assert cache_lifetime({"cache-control": "public, max-age=10"}) == 300
    assert cache_lifetime({"cache-control": "max-age=999999"}) == 86400
    assert cache_lifetime({"cache-control": "max-age=7200"}) == 7200


async def test_jwks_kid_miss_refetch_limited_and_last_good_kept() -> None:
    keys = [RSAKey.generate_key(2048, parameters={"kid": "a"})]
    state = {"calls": 0, "down": False}

    def handler(request: httpx.Request) -> httpx.Response:
        assert (request.method, str(request.url)) == ("GET", f"{ISS}/jwks")
        state["calls"] += 1
        if state["down"]:
            return httpx.Response(503)
        return httpx.Response(200, json={"keys": [k.as_dict(private=False) for k in keys]})

    clock = Clock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        cache = JwksCache(client, clock=clock)
        assert [k.kid for k in await cache.keys(f"{ISS}/jwks", "a")] == ["a"]
        assert [k.kid for k in await cache.keys(f"{ISS}/jwks", "a")] == ["a"]
        assert state["calls"] == 1
        keys.append(RSAKey.generate_key(2048, parameters={"kid": "b"}))
        assert {k.kid for k in await cache.keys(f"{ISS}/jwks", "b")} == {"a", "b"}  # kid miss → refetch
        assert state["calls"] == 2
        await cache.keys(f"{ISS}/jwks", "zzz")  # another miss within 30 s: no fetch
        await cache.keys(f"{ISS}/jwks", "zzz")
        assert state["calls"] == 2
        clock.now += 31
        await cache.keys(f"{ISS}/jwks", "zzz")
        assert state["calls"] == 3
        state["down"] = True
        clock.now += 7200  # expired, and the IdP fails: the last good keys stay
        assert {k.kid for k in await cache.keys(f"{ISS}/jwks", "a")} == {"a", "b"}
        assert state["calls"] == 4

        empty = JwksCache(client, clock=clock)
        with pytest.raises(JwksUnavailableError):
            await empty.keys(f"{ISS}/jwks", "a")


def _strategy(**settings) -> OpenIdConnectStrategy:
    return OpenIdConnectStrategy(
        id="s1",
        strategy_type="openid_connect",
        issuer=ISS,
        discovery_url=f"{ISS}/.well-known/openid-configuration",
        credential_claim=["client_id"],
        scopes=["openid", "read", "email"],
        auth_methods=["client_credentials"],
        settings=OidcSettings(token_post_args={"audience": "api"}, **settings),
    )


def _app(not_before: float | None = None) -> AppEntry:
    return AppEntry("a1", "app", "d", "p", "s1", not_before, frozenset(), b"")


class TokenIdp:
    def __init__(self, auth_methods: list[str] | None = None) -> None:
        self.token_calls: list[httpx.Request] = []
        self.status = 200
        self.expires_in: int | None = 100
        self.auth_methods = auth_methods or ["client_secret_basic"]
        self.gate: asyncio.Event | None = None

    async def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": ISS,
                    "token_endpoint": f"{ISS}/token",
                    "jwks_uri": f"{ISS}/jwks",
                    "token_endpoint_auth_methods_supported": self.auth_methods,
                },
            )
        assert (request.method, request.url.path) == ("POST", "/token")
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        self.token_calls.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "invalid_client"})
        body = {"access_token": f"at-{len(self.token_calls)}", "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return httpx.Response(200, json=body)


def _cache(idp: TokenIdp, clock: Clock) -> tuple[ExchangeCache, httpx.AsyncClient]:
    client = httpx.AsyncClient(transport=httpx.MockTransport(idp.handler))
    metrics = GatewayMetrics()
    return ExchangeCache(IdpClient(client, metrics), metrics, clock=clock), client


async def test_exchange_request_shape_and_cache_lifetime() -> None:
    idp, clock = TokenIdp(), Clock()
    idp.expires_in = 1000
    cache, client = _cache(idp, clock)
    strategy = _compile_strategy(_strategy())
    async with client:
        assert (await cache.token(strategy, _app(), "cli ent", "s:ecret"))[0] == "at-1"
        (request,) = idp.token_calls
        assert request.content == b"grant_type=client_credentials&scope=read&audience=api"
        assert request.headers["authorization"] == "Basic " + base64.b64encode(b"cli+ent:s%3Aecret").decode()
        clock.now += 790  # 1000 s lifetime: served until 30 s before expiry, refresh-ahead after 800 s
        assert (await cache.token(strategy, _app(), "cli ent", "s:ecret"))[0] == "at-1"
        assert len(idp.token_calls) == 1
        clock.now += 11  # 801 s: still served, one background refresh starts
        assert (await cache.token(strategy, _app(), "cli ent", "s:ecret"))[0] == "at-1"
        await asyncio.sleep(0.01)
        assert len(idp.token_calls) == 2
        assert (await cache.token(strategy, _app(), "cli ent", "s:ecret"))[0] == "at-2"
        # a different secret is another key
        assert (await cache.token(strategy, _app(), "cli ent", "other"))[0] == "at-3"


async def test_exchange_post_auth_negative_cache_not_before_and_outage() -> None:
    idp, clock = TokenIdp(auth_methods=["client_secret_post"]), Clock()
    cache, client = _cache(idp, clock)
    strategy = _compile_strategy(_strategy())
    async with client:
        await cache.token(strategy, _app(), "c1", "s1")
        assert b"client_id=c1" in idp.token_calls[0].content
        assert "authorization" not in idp.token_calls[0].headers
        # credentials_not_before after the entry was obtained: the cached token is ignored
        await cache.token(strategy, _app(not_before=clock.now + 1), "c1", "s1")
        assert len(idp.token_calls) == 2
        idp.status = 401
        with pytest.raises(SecretRejectedError):
            await cache.token(strategy, _app(), "c2", "bad")
        with pytest.raises(SecretRejectedError):
            await cache.token(strategy, _app(), "c2", "bad")
        assert len(idp.token_calls) == 3  # answered from the negative cache
        clock.now += 11
        with pytest.raises(SecretRejectedError):
            await cache.token(strategy, _app(), "c2", "bad")
        assert len(idp.token_calls) == 4


async def test_exchange_outage_serves_cached_until_real_expiry() -> None:
    idp, clock = TokenIdp(), Clock()
    cache, client = _cache(idp, clock)
    strategy = _compile_strategy(_strategy())
    async with client:
        await cache.token(strategy, _app(), "c1", "s1")
        idp.status = 500
        clock.now += 80  # inside the last 30 s: a new exchange is needed and fails
        assert (await cache.token(strategy, _app(), "c1", "s1"))[0] == "at-1"
        clock.now += 21  # past the real expiry
        with pytest.raises(IdpUnavailableError):
            await cache.token(strategy, _app(), "c1", "s1")


async def test_exchange_single_flight_and_lru() -> None:
    idp, clock = TokenIdp(), Clock()
    idp.gate = asyncio.Event()
    client = httpx.AsyncClient(transport=httpx.MockTransport(idp.handler))
    metrics = GatewayMetrics()
    cache = ExchangeCache(IdpClient(client, metrics), metrics, clock=clock, max_entries=2)
    strategy = _compile_strategy(_strategy())
    async with client:
        waiting = [asyncio.ensure_future(cache.token(strategy, _app(), "c1", "s1")) for _ in range(10)]
        await asyncio.sleep(0.05)
        idp.gate.set()
        assert {(await w)[0] for w in waiting} == {"at-1"}
        assert len(idp.token_calls) == 1
        await cache.token(strategy, _app(), "c2", "s")
        await cache.token(strategy, _app(), "c3", "s")
        assert len(cache) == 2
        assert metrics.cache_events[("exchange", "evict")] == 1
