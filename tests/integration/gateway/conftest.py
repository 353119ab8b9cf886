"""Fixtures: real loopback upstream and IdP, and the gateway started in-process on port 0."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx
import pytest

from keystile.gateway.app import GatewayNode, GatewayOptions
from tests.integration.gateway.servers import EchoUpstream, FakeIdp, IdpClientReg

PV_A = "74e54925-0000-4000-8000-00000000000a"
PV_B = "74e54925-0000-4000-8000-00000000000b"
S_KEY = "a17c0b4e-0000-4000-8000-000000000001"
S_OIDC = "22f8380e-0000-4000-8000-000000000002"
SESSION_SECRET = base64.b64encode(b"s" * 32).decode()


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class World:
    """A snapshot under construction: two routes, a key_auth and an openid_connect strategy, some apps."""

    upstream: str
    issuer: str
    version: int = 1
    apps: list[dict[str, Any]] = field(default_factory=list)
    registrations: dict[str, list[str]] = field(default_factory=dict)
    auth_methods: list[str] = field(
        default_factory=lambda: ["client_credentials", "bearer", "session", "introspection"]
    )
    oidc_settings: dict[str, Any] = field(default_factory=dict)
    extra_routes: list[dict[str, Any]] = field(default_factory=list)

    def key_app(self, app_id: str, key: str, registered: list[str], expires_at: str | None = None) -> None:
        cred = {"type": "api_key_sha256", "id": f"cred-{app_id}", "value": sha(key), "expires_at": expires_at}
        self.apps.append(self._app(app_id, S_KEY, [cred]))
        self.registrations[app_id] = registered

    def oidc_app(self, app_id: str, client_id: str, registered: list[str], not_before: str | None = None) -> None:
        app = self._app(app_id, S_OIDC, [{"type": "client_id", "id": client_id, "value": client_id}])
        app["credentials_not_before"] = not_before
        self.apps.append(app)
        self.registrations[app_id] = registered

    @staticmethod
    def _app(app_id: str, strategy: str, creds: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": app_id,
            "name": f"app {app_id} é",
            "developer_id": f"dev-{app_id}",
            "portal_id": "portal-1",
            "auth_strategy_id": strategy,
            "credentials_not_before": None,
            "credentials": creds,
        }

    def build(self) -> dict[str, Any]:
        routes = [
            {
                "product_version_id": pv,
                "product_id": "86f637b7-0000-4000-8000-000000000000",
                "paths": [path],
                "methods": None,
                "strip_path": True,
                "upstream_url": f"{self.upstream}/api",
                "connect_timeout_ms": 2000,
                "read_timeout_ms": 2000,
                "auth_strategy_ids": [S_KEY, S_OIDC],
                "allow_anonymous": False,
            }
            for pv, path in ((PV_A, "/a"), (PV_B, "/b"))
        ]
        settings = {
            "cache_tokens": True,
            "token_post_args": {"audience": "https://api.example.test"},
            "audience": [],
            "scopes_required": [],
            "session_cookie_name": "session",
            "session_absolute_timeout": 3600,
            "session_secret": SESSION_SECRET,
            "introspection_client_id": "introspector",
            "introspection_client_secret": "introspector-secret",
        }
        settings.update(self.oidc_settings)
        return {
            "format_version": 1,
            "version": self.version,
            "generated_at": "2026-11-28T10:00:00.000Z",
            "shared_cache_key": base64.b64encode(b"k" * 32).decode(),
            "routes": routes + self.extra_routes,
            "strategies": [
                {
                    "id": S_OIDC,
                    "strategy_type": "openid_connect",
                    "issuer": self.issuer,
                    "discovery_url": f"{self.issuer}/.well-known/openid-configuration",
                    "credential_claim": ["cid", "client_id"],
                    "scopes": ["openid", "billing:read"],
                    "auth_methods": self.auth_methods,
                    "settings": settings,
                },
                {"id": S_KEY, "strategy_type": "key_auth", "key_names": ["apikey", "x-api-key"]},
            ],
            "applications": self.apps,
            "registrations": self.registrations,
        }


@pytest.fixture
async def upstream() -> AsyncIterator[EchoUpstream]:
    server = EchoUpstream()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def idp() -> AsyncIterator[FakeIdp]:
    server = FakeIdp()
    await server.start()
    yield server
    if server.server is not None:
        await server.server.stop()


@pytest.fixture
def world(upstream: EchoUpstream, idp: FakeIdp) -> World:
    return World(upstream=upstream.url, issuer=idp.issuer)


@dataclass
class RunningGateway:
    node: GatewayNode
    client: httpx.AsyncClient
    status: httpx.AsyncClient
    log: io.BytesIO
    config_path: Path | None

    def log_lines(self) -> list[dict[str, Any]]:
        self.node._access_log.flush()
        return [json.loads(line) for line in self.log.getvalue().splitlines() if line.strip()]

    async def idp_calls(self) -> dict[str, float]:
        text = (await self.status.get("/metrics")).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("keystile_gateway_idp_requests_total{"):
                kind = line.split('kind="', 1)[1].split('"', 1)[0]
                out[kind] = out.get(kind, 0) + float(line.rsplit(" ", 1)[1])
        return out


StartGateway = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture
async def start_gateway(tmp_path: Path) -> AsyncIterator[StartGateway]:
    started: list[RunningGateway] = []

    async def start(snapshot: dict[str, Any] | None = None, **overrides: Any) -> RunningGateway:
        config_path = None
        if snapshot is not None and "control_plane" not in overrides:
            config_path = tmp_path / f"config-{len(started)}.json"
            config_path.write_text(json.dumps(snapshot))
            os.chmod(config_path, 0o600)
        opts = GatewayOptions(
            config_file=config_path,
            listen=("127.0.0.1", 0),
            status_listen=("127.0.0.1", 0),
            state_dir=tmp_path / "state",
            insecure_cookies=True,
            **overrides,
        )
        log = io.BytesIO()
        node = GatewayNode(opts, access_log_stream=log)
        await node.start()
        gw = RunningGateway(
            node=node,
            client=httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{node.proxy_port}",
                timeout=10,
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),  # tests send cookies explicitly
            ),
            status=httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.status_port}", timeout=10),
            log=log,
            config_path=config_path,
        )
        started.append(gw)
        return gw

    yield start
    for gw in started:
        await gw.client.aclose()
        await gw.status.aclose()
        await gw.node.stop(grace=1.0)


def basic(reg: IdpClientReg, *, encoded: bool = True, secret: str | None = None) -> str:
    raw = f"{reg.client_id}:{secret if secret is not None else reg.secret}"
    return "Basic " + (base64.b64encode(raw.encode()).decode() if encoded else raw)
