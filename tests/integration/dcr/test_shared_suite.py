"""The one shared adapter suite (contracts/dcr-providers.md §4.3), parametrised over every provider type.

Each type contributes a *harness* (`HARNESSES` below): how to build its adapter on a given transport, the IdP it
talks to (a real server on loopback, or the vendor's in-process fake), which request is the registration and
which the deletion, and the secrets it holds. The suite then runs, for every type:

- the lifecycle register → rotate (where `rotate`) → event → deregister, capturing every log record and finding
  none of the secrets used, and one `keystile.dcr` log line per IdP request;
- the failure classes of §1.3 on `register` (not idempotent) and `deregister` (idempotent): connection refused,
  read timeout, 429 with `Retry-After`, 500, malformed JSON on a 2xx. They are real network conditions: the armed
  request is sent to a loopback "chaos" server (or to a bound port that does not listen) instead of the IdP.

The vendor types (okta, auth0, azureAd) run against their in-process fakes of tests/unit/dcr/fakes. A new type
joins by adding `HARNESSES["<type>"] = <async context manager factory>`; a type without one is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from keystile.dcr.base import BaseProvider, TokenCache
from keystile.dcr.registry import ADAPTERS, build_adapter
from keystile.dcr.types import AppMetadata, HookEvent, IssuedClient, StrategyInfo
from keystile.domain.errors import ProviderError
from tests.conftest import missing_service
from tests.unit.dcr.fakes import auth0 as auth0_fake
from tests.unit.dcr.fakes import entra as entra_fake
from tests.unit.dcr.fakes import okta as okta_fake
from tests.unit.dcr.fakes.okta_spec import SPEC_DIR, OktaValidator, load_okta_specs
from tests.unit.dcr.rfc7592_fake import ADMIN_ID, ADMIN_SECRET, ISSUER, Rfc7592Fake

PROVIDER_ID = "0e6a8f2c-4b1d-4c3e-9a7f-6d5b4c3a2f10"
FAULT_READ_TIMEOUT = 0.3
RETRY_AFTER = 120  # seconds: past the 30 s deadline, so the adapter stops at once and says "retryable"


# -- the chaos server: real network failures on loopback -----------------------------------------------------------


def _http(status: str, body: bytes, content_type: str, *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join([*head, "Connection: close"]) + "\r\n\r\n").encode() + body


_CANNED = {
    "/429": _http("429 Too Many Requests", b'{"error":"slow_down"}', "application/json", f"Retry-After: {RETRY_AFTER}"),
    "/500": _http("500 Internal Server Error", b"oops", "text/plain"),
    "/malformed": _http("201 Created", b'{"client_id": "trun', "application/json"),
}


@dataclass
class Chaos:
    url: str
    refused_url: str
    hung: int = 0


async def _chaos_handler(chaos: Chaos, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b" ", 2)[1].decode()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await reader.readexactly(length)
        if target == "/hang":
            chaos.hung += 1
            await reader.read()  # until the client gives up and closes
            return
        writer.write(_CANNED[target])
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest.fixture(scope="session")
async def chaos() -> AsyncIterator[Chaos]:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    state = Chaos(url="", refused_url=f"http://127.0.0.1:{closed.getsockname()[1]}")
    server = await asyncio.start_server(lambda r, w: _chaos_handler(state, r, w), "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield state
    server.close()
    await server.wait_closed()
    closed.close()


class FaultTransport(httpx.AsyncBaseTransport):
    """Passes requests to the IdP's transport, except the armed one, which goes to the chaos server."""

    def __init__(self, inner: httpx.AsyncBaseTransport, chaos: Chaos) -> None:
        self.inner = inner
        self.chaos = chaos
        self.real = httpx.AsyncHTTPTransport()
        self.rule: tuple[Callable[[httpx.Request], bool], str] | None = None
        self.hits = 0
        self.requests: list[httpx.Request] = []

    def arm(self, match: Callable[[httpx.Request], bool], fault: str) -> None:
        self.rule, self.hits = (match, fault), 0

    def disarm(self) -> None:
        self.rule = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.rule is None or not self.rule[0](request):
            return await self.inner.handle_async_request(request)
        self.hits += 1
        fault = self.rule[1]
        base = self.chaos.refused_url if fault == "refused" else self.chaos.url
        path = {"refused": "/", "read_timeout": "/hang", "429": "/429", "500": "/500", "malformed": "/malformed"}[fault]
        timeout = {"connect": 5.0, "read": FAULT_READ_TIMEOUT, "write": 5.0, "pool": 5.0}
        forwarded = httpx.Request(
            request.method,
            base + path,
            headers=[(k, v) for k, v in request.headers.raw if k.lower() != b"host"],
            content=request.content,
            extensions={**request.extensions, "timeout": timeout},
        )
        return await self.real.handle_async_request(forwarded)

    async def aclose(self) -> None:
        await self.real.aclose()
        await self.inner.aclose()


# -- harnesses ---------------------------------------------------------------------------------------------------


@dataclass
class Harness:
    """What the suite needs from one provider type."""

    provider_type: str
    transport: FaultTransport
    build: Callable[[httpx.AsyncClient], BaseProvider]
    is_register: Callable[[httpx.Request], bool]
    is_deregister: Callable[[httpx.Request], bool]
    secrets: list[str]
    gone: Callable[[IssuedClient, SecretStr], Awaitable[bool]]
    app: AppMetadata = field(default_factory=lambda: suite_app("Suite app"))


def suite_app(name: str, redirect_uri: str | None = None, application_id: uuid.UUID | None = None) -> AppMetadata:
    return AppMetadata(
        application_id=application_id or uuid.uuid4(),
        name=name,
        description="shared suite",
        redirect_uri=redirect_uri,
        scopes=("read",),
        developer_id="dev-1",
        portal_id="portal-1",
        auth_strategy_id="strategy-1",
        dcr_provider_id=PROVIDER_ID,
        organization_id="org-1",
        strategy=StrategyInfo(
            scopes=("read",), token_post_args_names=("audience",), token_post_args_values=("https://api.test",)
        ),
    )


async def no_sleep(seconds: float) -> None:
    """Retries without waiting: the backoff itself is tested in tests/unit/dcr/test_base.py."""


def _builder(provider_type: str, issuer: str, dcr_config: dict[str, Any], secrets: dict[str, str]):
    def build(client: httpx.AsyncClient) -> BaseProvider:
        adapter = build_adapter(
            provider_type=provider_type,
            provider_id=PROVIDER_ID,
            issuer=issuer,
            dcr_config=dcr_config,
            secrets=secrets,
            client=client,
            token_cache=TokenCache(),
            sleep=no_sleep,
        )
        assert isinstance(adapter, BaseProvider)
        return adapter

    return build


@contextlib.asynccontextmanager
async def rfc7591_harness(request: pytest.FixtureRequest, chaos: Chaos) -> AsyncIterator[Harness]:
    """The real oidc-provider peer, with the rotate-on-PUT IAT."""
    peer = request.getfixturevalue("oidc_peer")
    transport = FaultTransport(httpx.AsyncHTTPTransport(), chaos)

    async def gone(issued: IssuedClient, secret: SecretStr) -> bool:
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"{peer.issuer}/token",
                data={"grant_type": "client_credentials"},
                auth=(issued.client_id, secret.get_secret_value()),
            )
        return answer.status_code == 401

    yield Harness(
        provider_type="rfc7591",
        transport=transport,
        build=_builder(
            "rfc7591", peer.issuer, {"rotates_secret_on_put": True}, {"initial_access_token": peer.rotating_iat}
        ),
        is_register=lambda r: r.method == "POST" and r.url.path == "/reg",
        is_deregister=lambda r: r.method == "DELETE" and r.url.path.startswith("/reg/"),
        secrets=[peer.rotating_iat],
        gone=gone,
    )
    await transport.aclose()


@contextlib.asynccontextmanager
async def curity_harness(request: pytest.FixtureRequest, chaos: Chaos) -> AsyncIterator[Harness]:
    """The in-process Curity fake."""
    fake = Rfc7592Fake()
    transport = FaultTransport(fake.transport(), chaos)

    async def gone(issued: IssuedClient, secret: SecretStr) -> bool:
        return issued.client_id not in fake.clients

    yield Harness(
        provider_type="curity",
        transport=transport,
        build=_builder("curity", ISSUER, {"initial_client_id": ADMIN_ID}, {"initial_client_secret": ADMIN_SECRET}),
        is_register=lambda r: r.method == "POST" and r.url.path == "/register",
        is_deregister=lambda r: r.method == "DELETE" and r.url.path.startswith("/register/"),
        secrets=[ADMIN_SECRET],
        gone=gone,
    )
    await transport.aclose()
    fake.assert_clean()


@contextlib.asynccontextmanager
async def http_harness(request: pytest.FixtureRequest, chaos: Chaos) -> AsyncIterator[Harness]:
    """The ASGI bridge on loopback."""
    bridge = request.getfixturevalue("bridge")
    transport = FaultTransport(httpx.AsyncHTTPTransport(), chaos)

    async def gone(issued: IssuedClient, secret: SecretStr) -> bool:
        return issued.client_id not in bridge.state.clients

    yield Harness(
        provider_type="http",
        transport=transport,
        build=_builder("http", bridge.origin, {"dcr_base_url": bridge.base_url}, {"api_key": bridge.api_key}),
        is_register=lambda r: r.method == "POST" and r.url.path == "/dcr/",
        is_deregister=lambda r: r.method == "DELETE" and r.url.path.startswith("/dcr/"),
        secrets=[bridge.api_key],
        gone=gone,
    )
    await transport.aclose()


def vendor_app(scopes: tuple[str, ...], **strategy: Any) -> AppMetadata:
    app = suite_app("Suite app")
    return dataclasses.replace(app, scopes=scopes, strategy=StrategyInfo(scopes=scopes, **strategy))


@pytest.fixture(scope="session")
def okta_validator() -> OktaValidator | None:
    """Okta's OpenAPI documents, parsed once per test run (None when ../shared/specs/okta is absent)."""
    return load_okta_specs()


@contextlib.asynccontextmanager
async def okta_harness(request: pytest.FixtureRequest, chaos: Chaos) -> AsyncIterator[Harness]:
    """The Okta fake, its traffic validated against Okta's OpenAPI documents."""
    validator = request.getfixturevalue("okta_validator")
    if validator is None:
        missing_service(f"Okta's OpenAPI documents are not in {SPEC_DIR} (see ../shared/specs/okta/SOURCE.md)")
    fake = okta_fake.FakeOkta(validator)
    transport = FaultTransport(fake.transport(), chaos)

    async def gone(issued: IssuedClient, secret: SecretStr) -> bool:
        return issued.client_id not in fake.clients

    yield Harness(
        provider_type="okta",
        transport=transport,
        build=_builder("okta", okta_fake.ISSUER, {}, {"dcr_token": okta_fake.API_TOKEN}),
        is_register=lambda r: r.method == "POST" and r.url.path == "/oauth2/v1/clients",
        is_deregister=lambda r: (
            r.method == "DELETE" and re.fullmatch(r"/oauth2/v1/clients/[^/]+", r.url.path) is not None
        ),
        secrets=[okta_fake.API_TOKEN],
        gone=gone,
        app=vendor_app(("orders:read",)),
    )
    await transport.aclose()
    fake.assert_clean()


@contextlib.asynccontextmanager
async def auth0_harness(request: pytest.FixtureRequest, chaos: Chaos) -> AsyncIterator[Harness]:
    """The Auth0 fake (Management API, client grants)."""
    fake = auth0_fake.FakeAuth0()
    transport = FaultTransport(fake.transport(), chaos)

    async def gone(issued: IssuedClient, secret: SecretStr) -> bool:
        return issued.client_id not in fake.clients and not fake.grants_of(issued.client_id)

    yield Harness(
        provider_type="auth0",
        transport=transport,
        build=_builder(
            "auth0",
            auth0_fake.ISSUER,
            {"initial_client_id": auth0_fake.ADMIN_CLIENT_ID},
            {"initial_client_secret": auth0_fake.ADMIN_CLIENT_SECRET},
        ),
        is_register=lambda r: r.method == "POST" and r.url.path == "/api/v2/clients",
        is_deregister=lambda r: r.method == "DELETE" and re.fullmatch(r"/api/v2/clients/[^/]+", r.url.path) is not None,
        secrets=[auth0_fake.ADMIN_CLIENT_SECRET],
        gone=gone,
        app=vendor_app(
            ("orders:read",), token_post_args_names=("audience",), token_post_args_values=(auth0_fake.API_AUDIENCE,)
        ),
    )
    await transport.aclose()
    fake.assert_clean()


@contextlib.asynccontextmanager
async def azure_ad_harness(request: pytest.FixtureRequest, chaos: Chaos) -> AsyncIterator[Harness]:
    """The Entra ID fake (Microsoft Graph and the identity platform's token endpoint)."""
    fake = entra_fake.FakeEntra()
    transport = FaultTransport(fake.transport(), chaos)

    async def gone(issued: IssuedClient, secret: SecretStr) -> bool:
        return fake.by_app_id(issued.client_id) is None and fake.sp_of(issued.client_id) is None

    yield Harness(
        provider_type="azureAd",
        transport=transport,
        build=_builder(
            "azureAd",
            entra_fake.ISSUER,
            {"initial_client_id": entra_fake.ADMIN_CLIENT_ID},
            {"initial_client_secret": entra_fake.ADMIN_CLIENT_SECRET},
        ),
        is_register=lambda r: r.method == "POST" and r.url.path == "/v1.0/applications",
        is_deregister=lambda r: (
            r.method == "DELETE" and re.fullmatch(r"/v1\.0/applications/[^/]+", r.url.path) is not None
        ),
        secrets=[entra_fake.ADMIN_CLIENT_SECRET],
        gone=gone,
        app=vendor_app((entra_fake.API_SCOPE,)),
    )
    await transport.aclose()
    fake.assert_clean()


#: provider_type → harness factory.
HARNESSES: dict[str, Callable[[pytest.FixtureRequest, Chaos], contextlib.AbstractAsyncContextManager[Harness]]] = {
    "rfc7591": rfc7591_harness,
    "curity": curity_harness,
    "http": http_harness,
    "okta": okta_harness,
    "auth0": auth0_harness,
    "azureAd": azure_ad_harness,
}
_MARKS = {"rfc7591": [pytest.mark.node]}


@pytest.fixture(params=[pytest.param(t, marks=_MARKS.get(t, [])) for t in sorted(ADAPTERS)])
async def harness(request: pytest.FixtureRequest, chaos: Chaos) -> AsyncIterator[Harness]:
    factory = HARNESSES.get(request.param)
    if factory is None:
        pytest.skip(f"no shared-suite harness for {request.param} yet (add one to HARNESSES)")
    async with factory(request, chaos) as built:
        yield built


@pytest.fixture
async def adapter(harness: Harness) -> AsyncIterator[BaseProvider]:
    async with httpx.AsyncClient(
        transport=harness.transport, timeout=httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=5.0)
    ) as client:
        yield harness.build(client)


# -- the suite ---------------------------------------------------------------------------------------------------


async def test_lifecycle_logs_one_line_per_request_and_no_secret(harness, adapter, caplog):
    caplog.set_level(logging.DEBUG)
    app = harness.app
    issued = await adapter.register(app)
    ref = issued.as_ref(app.application_id)
    used: list[str | SecretStr] = [*harness.secrets, issued.client_secret, *issued.secret_handles.values()]
    secret = issued.client_secret
    if adapter.capabilities.rotate:
        rotated = await adapter.rotate_secret(ref)
        ref = rotated.apply(ref)
        secret = rotated.client_secret
        used += [rotated.client_secret, *rotated.secret_handles.values()]
        assert rotated.client_secret.get_secret_value() != issued.client_secret.get_secret_value()
    moved = dataclasses.replace(app, name="Suite app renamed", redirect_uri="https://suite.test/cb")
    update = await adapter.on_event(ref, HookEvent("update_application", moved))
    if update is not None:
        ref = update.apply(ref)
        used += [s for s in (update.client_secret, *update.secret_handles.values()) if s is not None]
        secret = update.client_secret or secret
    await adapter.deregister(ref)
    assert await harness.gone(issued, secret)

    records = caplog.records
    text = "\n".join(f"{r.getMessage()} {r.args!r} {vars(r)!r}" for r in records)
    values = {s.get_secret_value() if isinstance(s, SecretStr) else s for s in used}
    assert len(values) >= 3
    for value in values:
        assert value not in text, "a secret reached the logs"
    idp_lines = [r for r in records if r.name == "keystile.dcr"]
    discovery_lines = [r for r in records if r.name == "keystile.oidc.discovery"]
    assert len(idp_lines) + len(discovery_lines) == len(harness.transport.requests)
    for line in idp_lines:
        assert "?" not in line.url_path
        assert line.dcr_provider_type == harness.provider_type


REGISTER_FAULTS = [
    # fault, code, retryable, outcome_unknown, attempts
    ("refused", "connect_error", True, False, 3),
    ("read_timeout", "timeout", False, True, 1),
    ("429", "slow_down", True, False, 1),
    ("500", "http_500", False, True, 1),
    ("malformed", "invalid_response", False, True, 1),
]


@pytest.mark.parametrize(("fault", "code", "retryable", "unknown", "attempts"), REGISTER_FAULTS)
async def test_register_failures_are_classified(harness, adapter, fault, code, retryable, unknown, attempts):
    harness.transport.arm(harness.is_register, fault)
    with pytest.raises(ProviderError) as caught:
        await adapter.register(harness.app)
    harness.transport.disarm()
    err = caught.value
    assert (err.code, err.retryable, err.outcome_unknown) == (code, retryable, unknown)
    assert harness.transport.hits == attempts
    assert err.provider_type == harness.provider_type
    assert err.operation == "register"
    if fault == "429":
        assert err.retry_after == RETRY_AFTER
        assert err.status == 429
    if fault in ("refused", "read_timeout"):
        assert err.status is None
        assert isinstance(err.__cause__, httpx.TransportError)


DEREGISTER_FAULTS = [
    ("refused", "connect_error", True, False, 3),
    ("read_timeout", "timeout", True, False, 3),
    ("429", "slow_down", True, False, 1),
    ("500", "http_500", True, False, 3),
]


@pytest.mark.parametrize(("fault", "code", "retryable", "unknown", "attempts"), DEREGISTER_FAULTS)
async def test_deregister_failures_are_classified(harness, adapter, fault, code, retryable, unknown, attempts):
    issued = await adapter.register(harness.app)
    ref = issued.as_ref(harness.app.application_id)
    harness.transport.arm(harness.is_deregister, fault)
    with pytest.raises(ProviderError) as caught:
        await adapter.deregister(ref)
    harness.transport.disarm()
    err = caught.value
    assert (err.code, err.retryable, err.outcome_unknown) == (code, retryable, unknown)
    assert harness.transport.hits == attempts
    await adapter.deregister(ref)  # the outbox's next try succeeds
    assert await harness.gone(issued, issued.client_secret)
