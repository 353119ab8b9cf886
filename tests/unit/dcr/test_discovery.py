"""`keystile.oidc.discovery`: issuer metadata fetched, checked and cached (OpenID Discovery §4, RFC 8414 §3)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from keystile.oidc.discovery import (
    DEFAULT_MAX_AGE,
    DiscoveryCache,
    DiscoveryError,
    candidate_urls,
    normalize_issuer,
)


def test_issuer_normalisation_and_candidate_urls():
    assert normalize_issuer("https://c.test/oauth/v2/oauth-anonymous/.well-known/openid-configuration") == (
        "https://c.test/oauth/v2/oauth-anonymous"
    )
    assert normalize_issuer(" https://a.test/ ") == "https://a.test/"
    assert candidate_urls("https://a.test/tenant") == [
        "https://a.test/tenant/.well-known/openid-configuration",
        "https://a.test/.well-known/oauth-authorization-server/tenant",
    ]
    assert candidate_urls("https://a.test/") == [
        "https://a.test/.well-known/openid-configuration",
        "https://a.test/.well-known/oauth-authorization-server",
    ]


class Server:
    def __init__(self, routes):
        self.routes = routes
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.url.path)
        answer = self.routes.get(request.url.path)
        if callable(answer):
            return answer(request)
        return answer if answer is not None else httpx.Response(404)


def client(server):
    return httpx.AsyncClient(transport=httpx.MockTransport(server))


async def test_fetch_check_and_cache_with_clamped_max_age():
    now = [0.0]
    server = Server(
        {
            "/t/.well-known/openid-configuration": httpx.Response(
                200,
                json={
                    "issuer": "https://a.test/t",
                    "token_endpoint": "https://a.test/t/token",
                    "registration_endpoint": 5,
                },
                headers={"Cache-Control": "public, max-age=10"},
            )
        }
    )
    cache = DiscoveryCache(clock=lambda: now[0])
    async with client(server) as http:
        metadata = await cache.get("https://a.test/t/.well-known/openid-configuration", http)
        assert metadata.issuer == "https://a.test/t"
        assert metadata.token_endpoint == "https://a.test/t/token"
        assert metadata.registration_endpoint is None  # not a string
        assert metadata.jwks_uri is None
        assert metadata.get("token_endpoint") == "https://a.test/t/token"
        assert metadata.source_url == "https://a.test/t/.well-known/openid-configuration"
        await cache.get("https://a.test/t", http)
        now[0] = 239.0  # max-age 10 is clamped up to 5 minutes; refreshed ahead after 80 % of it (240 s)
        await cache.get("https://a.test/t", http)
        await _settle(cache)
        assert len(server.seen) == 1
        now[0] = 241.0
        assert (await cache.get("https://a.test/t", http)) is metadata  # answered from the cache...
        await _settle(cache)
        assert len(server.seen) == 2  # ...while one background refetch ran
        now[0] = 241.0 + 239.0
        await cache.get("https://a.test/t", http)
        await _settle(cache)
        assert len(server.seen) == 2
        now[0] = 241.0 + 301.0  # expired: fetched in the foreground
        await cache.get("https://a.test/t", http)
        assert len(server.seen) == 3
        cache.forget("https://a.test/t")
        await cache.get("https://a.test/t", http)
        assert len(server.seen) == 4


async def _settle(cache: DiscoveryCache) -> None:
    pending = list(cache._refreshing.values())
    if pending:
        await asyncio.wait(pending)


async def test_refresh_ahead_runs_once_and_a_failure_keeps_the_document():
    now = [0.0]
    state = {"down": False, "calls": 0}
    gate = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        state["calls"] += 1
        await gate.wait()
        if state["down"]:
            return httpx.Response(503)
        return httpx.Response(200, json={"issuer": "https://a.test"}, headers={"cache-control": "max-age=1000"})

    cache = DiscoveryCache(clock=lambda: now[0])
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        gate.set()
        first = await cache.get("https://a.test", http)
        gate.clear()
        now[0] = 900.0  # past 80 %: every use answers at once, one refetch is in flight
        results = await asyncio.gather(*(cache.get("https://a.test", http) for _ in range(5)))
        assert all(r is first for r in results)
        await asyncio.sleep(0)
        assert state["calls"] == 2
        state["down"] = True
        gate.set()
        await _settle(cache)
        assert (await cache.get("https://a.test", http)) is first  # the failed refetch kept the document
        await _settle(cache)
        assert state["calls"] == 2  # and the next one waits 30 s
        now[0] = 931.0
        assert (await cache.get("https://a.test", http)) is first
        await _settle(cache)
        assert state["calls"] == 3
        now[0] = 1001.0
        with pytest.raises(DiscoveryError):  # expired, and the IdP is down
            await cache.get("https://a.test", http)


async def test_max_age_upper_clamp_and_default():
    now = [0.0]
    long_lived = Server(
        {
            "/.well-known/openid-configuration": httpx.Response(
                200, json={"issuer": "https://a.test"}, headers={"cache-control": "max-age=999999"}
            )
        }
    )
    cache = DiscoveryCache(clock=lambda: now[0])
    async with client(long_lived) as http:
        await cache.get("https://a.test", http)
        now[0] = 0.8 * 86400 - 1
        await cache.get("https://a.test", http)
        assert len(long_lived.seen) == 1
        now[0] = 86401.0
        await cache.get("https://a.test", http)
        assert len(long_lived.seen) == 2
    plain = Server({"/.well-known/openid-configuration": httpx.Response(200, json={"issuer": "https://b.test"})})
    now[0] = 0.0
    async with client(plain) as http:
        await cache.get("https://b.test", http)
        now[0] = 0.8 * DEFAULT_MAX_AGE - 1
        await cache.get("https://b.test", http)
        assert len(plain.seen) == 1


async def test_rfc8414_fallback_on_4xx():
    server = Server(
        {
            "/.well-known/oauth-authorization-server/tenant": httpx.Response(
                200, json={"issuer": "https://a.test/tenant", "registration_endpoint": "https://a.test/reg"}
            )
        }
    )
    async with client(server) as http:
        metadata = await DiscoveryCache().get("https://a.test/tenant", http)
    assert metadata.registration_endpoint == "https://a.test/reg"
    assert server.seen == ["/tenant/.well-known/openid-configuration", "/.well-known/oauth-authorization-server/tenant"]


@pytest.mark.parametrize(
    ("routes", "code", "status", "retryable"),
    [
        ({}, "http_404", 404, False),
        ({"/.well-known/openid-configuration": httpx.Response(503)}, "http_503", 503, True),
        ({"/.well-known/openid-configuration": httpx.Response(200, text="<html>")}, "invalid_response", 200, False),
        ({"/.well-known/openid-configuration": httpx.Response(200, json=["x"])}, "invalid_response", 200, False),
        (
            {"/.well-known/openid-configuration": httpx.Response(200, json={"issuer": 5})},
            "invalid_response",
            200,
            False,
        ),
        (
            {"/.well-known/openid-configuration": httpx.Response(200, json={"issuer": "https://evil.test"})},
            "issuer_mismatch",
            200,
            False,
        ),
    ],
)
async def test_failures(routes, code, status, retryable):
    async with client(Server(routes)) as http:
        with pytest.raises(DiscoveryError) as caught:
            await DiscoveryCache().get("https://a.test", http)
    err = caught.value
    assert (err.code, err.status, err.retryable, err.issuer) == (code, status, retryable, "https://a.test")


@pytest.mark.parametrize(
    ("exc", "code"), [(httpx.ConnectError("refused"), "connect_error"), (httpx.ReadTimeout("slow"), "timeout")]
)
async def test_transport_failures_are_chained(exc, code):
    def fail(request):
        raise exc

    async with client(fail) as http:
        with pytest.raises(DiscoveryError) as caught:
            await DiscoveryCache().get("https://a.test", http)
    assert caught.value.code == code
    assert caught.value.retryable
    assert caught.value.__cause__ is exc
    assert caught.value.url == "https://a.test/.well-known/openid-configuration"


async def test_concurrent_gets_share_one_fetch_and_failures_are_not_cached():
    calls = []

    async def slow(request):
        calls.append(1)
        await asyncio.sleep(0.01)
        if len(calls) == 1:
            return httpx.Response(500)
        return httpx.Response(200, json={"issuer": "https://a.test"})

    cache = DiscoveryCache()
    async with client(slow) as http:
        with pytest.raises(DiscoveryError):
            await cache.get("https://a.test", http)
        results = await asyncio.gather(*(cache.get("https://a.test", http) for _ in range(4)))
    assert {r.issuer for r in results} == {"https://a.test"}
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("endpoint", "value"),
    [
        ("token_endpoint", "http://idp.example.com/token"),
        ("jwks_uri", "ftp://a.test/jwks"),
        ("introspection_endpoint", "https:///nohost"),
    ],
)
async def test_endpoints_follow_the_issuers_https_rule(endpoint, value):
    server = Server(
        {
            "/.well-known/openid-configuration": httpx.Response(
                200, json={"issuer": "https://a.test/", "token_endpoint": "https://a.test/token", endpoint: value}
            )
        }
    )
    with pytest.raises(DiscoveryError, match=f"{endpoint} is refused") as info:
        await DiscoveryCache().get("https://a.test/", client(server))
    assert info.value.code == "invalid_response"


async def test_loopback_endpoints_may_use_plain_http():
    server = Server(
        {
            "/.well-known/openid-configuration": httpx.Response(
                200, json={"issuer": "http://127.0.0.1:9000", "token_endpoint": "http://127.0.0.1:9000/token"}
            )
        }
    )
    meta = await DiscoveryCache().get("http://127.0.0.1:9000", client(server))
    assert meta.token_endpoint == "http://127.0.0.1:9000/token"
