"""Fixtures of the DCR integration tests: a real HTTP client and the RFC 7591 servers the same tests run against.

`rfc7591_server` hides what is server-specific. It is parametrised over the real servers keystile is tested with:
the oidc-provider peer (tests/idp) and keystile's built-in IdP (`keystile idp`, tests/fixtures/builtin_idp.py), whose
fixtures expose the same fields.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.integration.dcr.bridge_app import BridgeState, ThreadedServer, build_bridge

TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=5.0)


@dataclass(frozen=True)
class Rfc7591Server:
    """What the RFC 7591 tests need to know about a server.

    Attributes:
        static_iat: a reusable initial access token whose clients keep their secret on PUT.
        rotating_iat: a reusable initial access token whose clients get a new secret on every PUT.
        admin_client_id / admin_client_secret / admin_scope: a client whose client-credentials token of
            `admin_scope` is accepted as a single-use initial access token.
        api_audience: the `aud` of the access tokens issued to registered clients.
    """

    name: str
    issuer: str
    api_audience: str
    static_iat: str
    rotating_iat: str
    admin_client_id: str
    admin_client_secret: str
    admin_scope: str = "dcr"


#: server name → the session fixture that runs it (both yield `issuer`, `plain_iat`, `rotating_iat`, `api_audience`,
#: `admin_client_id`, `admin_client_secret`).
SERVERS = {"oidc-provider": "oidc_peer", "keystile-idp": "builtin_idp"}


@pytest.fixture(params=[pytest.param("oidc-provider", marks=pytest.mark.node), "keystile-idp"])
def rfc7591_server(request: pytest.FixtureRequest) -> Rfc7591Server:
    running = request.getfixturevalue(SERVERS[request.param])
    return Rfc7591Server(
        name=request.param,
        issuer=running.issuer,
        api_audience=running.api_audience,
        static_iat=running.plain_iat,
        rotating_iat=running.rotating_iat,
        admin_client_id=running.admin_client_id,
        admin_client_secret=running.admin_client_secret,
    )


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    """A real HTTP client with the contract's timeouts (§1.4), closed after the test."""
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        yield client


@dataclass
class Bridge:
    """The test bridge: its origin (also the provider's issuer), `dcr_base_url`, API key and state."""

    origin: str
    state: BridgeState
    api_key: str

    @property
    def base_url(self) -> str:
        return f"{self.origin}/dcr/"


@pytest.fixture(scope="session")
def bridge_server() -> Iterator[tuple[str, BridgeState]]:
    state = BridgeState()
    server = ThreadedServer(build_bridge(state))
    origin = server.start()
    yield origin, state
    server.stop()


@pytest.fixture
def bridge(bridge_server: tuple[str, BridgeState]) -> Bridge:
    """The session's bridge, reset, with a fresh API key."""
    origin, state = bridge_server
    api_key = "key_" + secrets.token_hex(12)
    state.reset(api_key)
    return Bridge(origin=origin, state=state, api_key=api_key)
