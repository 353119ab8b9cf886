"""Routing and lookup tables built from one snapshot, off the request path (contracts/gateway.md §2.3, §3).

A `GatewayConfig` is immutable once built; the server swaps the reference atomically and a request keeps
the one it started with.
"""

from __future__ import annotations

import base64
import logging
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from urllib.parse import quote, urlsplit

from keystile.domain.snapshot import KeyAuthStrategy, OpenIdConnectStrategy, Route, Snapshot
from keystile.gateway.routes import Router, normalize_path
from keystile.gateway.session import derive_session_key

log = logging.getLogger("keystile.gateway.tables")

__all__ = ["AppEntry", "CompiledRoute", "CompiledStrategy", "ConfigSource", "GatewayConfig", "KeyEntry", "build_config"]

ConfigSource = Literal["control_plane", "last_known_good", "file"]


@dataclass(frozen=True, eq=False)
class CompiledStrategy:
    id: str
    strategy_type: str
    key_names: tuple[str, ...] = ()
    key_names_lower: tuple[bytes, ...] = ()
    issuer: str = ""
    discovery_url: str = ""
    credential_claim: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    client_credentials: bool = False
    bearer: bool = False
    session: bool = False
    introspection: bool = False
    oidc: OpenIdConnectStrategy | None = None
    session_key: bytes | None = None
    cookie_name: str = "session"


@dataclass(eq=False, slots=True)
class AppEntry:
    id: str
    name: str
    developer_id: str
    portal_id: str
    strategy_id: str
    not_before: float | None
    registrations: frozenset[str]
    _identity: bytes | None = None

    @property
    def identity_headers(self) -> bytes:
        """The X-Application-* lines (§5.6), encoded on first use."""
        if self._identity is None:
            self._identity = _identity_headers(self.id, self.name, self.developer_id, self.portal_id)
        return self._identity


@dataclass(frozen=True, eq=False, slots=True)
class KeyEntry:
    app: AppEntry
    credential_id: str
    expires_at: float | None


@dataclass(eq=False)
class CompiledRoute:
    product_version_id: str
    product_id: str
    scheme: str
    host: str
    port: int
    base_path: str
    host_header: bytes
    strip_path: bool
    connect_timeout: float
    read_timeout: float
    allow_anonymous: bool
    strategies: tuple[CompiledStrategy, ...]
    strategy_ids: frozenset[str]
    key_strategies: tuple[CompiledStrategy, ...]
    has_basic: bool
    bearer_strategies: tuple[CompiledStrategy, ...]
    introspection_strategies: tuple[CompiledStrategy, ...]
    session_strategies: tuple[CompiledStrategy, ...]
    key_params: frozenset[str]
    www_authenticate: list[str]


@dataclass(eq=False)
class GatewayConfig:
    version: int
    source: ConfigSource
    loaded_at: float
    router: Router[CompiledRoute]
    strategies: dict[str, CompiledStrategy]
    apps: dict[str, AppEntry]
    keys: dict[tuple[str, str], KeyEntry]
    client_ids: dict[tuple[str, str], AppEntry]
    routes: list[CompiledRoute] = field(default_factory=list)
    shared_key: bytes | None = None  # the installation's shared_cache_key: encrypts what gateways share in Redis


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _compile_strategy(model: OpenIdConnectStrategy | KeyAuthStrategy) -> CompiledStrategy:
    if isinstance(model, KeyAuthStrategy):
        return CompiledStrategy(
            id=model.id,
            strategy_type="key_auth",
            key_names=tuple(model.key_names),
            key_names_lower=tuple(n.lower().encode("latin-1", "replace") for n in model.key_names),
        )
    methods = set(model.auth_methods)
    settings = model.settings
    return CompiledStrategy(
        id=model.id,
        strategy_type="openid_connect",
        issuer=model.issuer,
        discovery_url=model.discovery_url,
        credential_claim=tuple(model.credential_claim),
        scopes=tuple(model.scopes),
        client_credentials="client_credentials" in methods,
        bearer="bearer" in methods,
        session="session" in methods and bool(settings.session_secret),
        introspection="introspection" in methods,
        oidc=model,
        session_key=derive_session_key(settings.session_secret) if settings.session_secret else None,
        cookie_name=settings.session_cookie_name,
    )


def _identity_headers(app_id: str, name: str, developer_id: str, portal_id: str) -> bytes:
    lines = [
        ("X-Application-ID", app_id),
        ("X-Application-Developer-ID", developer_id),
        ("X-Application-Portal-ID", portal_id),
        ("X-Application-Name", quote(name, safe=" !#$&'()*+,/:;=?@[]~")),
    ]
    return b"".join(n.encode() + b": " + v.encode("latin-1", "replace") + b"\r\n" for n, v in lines)


def _compile_route(route_model: Route, strategies: dict[str, CompiledStrategy]) -> CompiledRoute:
    url = urlsplit(route_model.upstream_url)
    scheme = url.scheme
    port = url.port or (443 if scheme == "https" else 80)
    host = url.hostname or ""
    default_port = (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
    host_header = host if ":" not in host else f"[{host}]"
    if not default_port:
        host_header = f"{host_header}:{port}"
    chosen = tuple(strategies[s] for s in route_model.auth_strategy_ids if s in strategies)
    www: list[str] = []
    if any(s.bearer or s.introspection or s.session for s in chosen) or not chosen:
        www.append('Bearer realm="keystile"')
    if any(s.client_credentials for s in chosen):
        www.append('Basic realm="keystile"')
    if any(s.strategy_type == "key_auth" for s in chosen):
        www.append('Key realm="keystile"')
    key_strategies = tuple(s for s in chosen if s.strategy_type == "key_auth")
    return CompiledRoute(
        product_version_id=route_model.product_version_id,
        product_id=route_model.product_id,
        scheme=scheme,
        host=host,
        port=port,
        base_path=url.path,
        host_header=host_header.encode("idna" if not host_header.isascii() else "ascii"),
        strip_path=route_model.strip_path,
        connect_timeout=route_model.connect_timeout_ms / 1000.0,
        read_timeout=route_model.read_timeout_ms / 1000.0,
        allow_anonymous=route_model.allow_anonymous,
        strategies=chosen,
        strategy_ids=frozenset(s.id for s in chosen),
        key_strategies=key_strategies,
        has_basic=any(s.client_credentials for s in chosen),
        bearer_strategies=tuple(s for s in chosen if s.bearer),
        introspection_strategies=tuple(s for s in chosen if s.introspection),
        session_strategies=tuple(s for s in chosen if s.session),
        key_params=frozenset(n for s in key_strategies for n in s.key_names),
        www_authenticate=www,
    )


def build_config(snapshot: Snapshot, source: ConfigSource) -> GatewayConfig:
    """Build every table the request path needs.

    Raises:
        ValueError: a route path that cannot be normalised (`MalformedPathError`).
    """
    strategies = {s.id: _compile_strategy(s) for s in snapshot.strategies}
    routes: list[CompiledRoute] = []
    entries = []
    for route_model in snapshot.routes:
        compiled = _compile_route(route_model, strategies)
        routes.append(compiled)
        for path in route_model.paths:
            normalize_path(path)
            entries.append((path, route_model.methods, compiled))
    router: Router[CompiledRoute] = Router(entries)
    apps: dict[str, AppEntry] = {}
    keys: dict[tuple[str, str], KeyEntry] = {}
    client_ids: dict[tuple[str, str], AppEntry] = {}
    intern = sys.intern
    empty: frozenset[str] = frozenset()
    shared: dict[tuple[str, ...], frozenset[str]] = {}
    for app in snapshot.applications:
        granted = snapshot.registrations.get(app.id)
        if granted:
            key = tuple(sorted(granted))
            registrations = shared.get(key)
            if registrations is None:
                registrations = shared[key] = frozenset(intern(pv) for pv in key)
        else:
            registrations = empty
        entry = AppEntry(
            id=app.id,
            name=app.name,
            developer_id=intern(app.developer_id),
            portal_id=intern(app.portal_id),
            strategy_id=intern(app.auth_strategy_id),
            not_before=_ts(app.credentials_not_before),
            registrations=registrations,
        )
        apps[app.id] = entry
        for cred in app.credentials:
            if cred.type == "api_key_sha256":
                keys[(app.auth_strategy_id, cred.value.lower())] = KeyEntry(entry, cred.id, _ts(cred.expires_at))
            else:
                client_ids[(app.auth_strategy_id, cred.value)] = entry
    return GatewayConfig(
        version=snapshot.version,
        source=source,
        loaded_at=time.time(),
        router=router,
        strategies=strategies,
        apps=apps,
        keys=keys,
        client_ids=client_ids,
        routes=routes,
        shared_key=_shared_key(snapshot.shared_cache_key),
    )


def _shared_key(value: str | None) -> bytes | None:
    """The 32-byte key from the snapshot's base64 `shared_cache_key`; None (nothing shared) when absent or malformed."""
    if not value:
        return None
    try:
        key = base64.b64decode(value, validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        log.error("the snapshot's shared_cache_key is not 32 bytes of base64; gateways will not share token caches")
        return None
    return key
