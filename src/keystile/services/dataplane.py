"""The data-plane side (contracts/gateway.md §2–3): the snapshot, the config feed's wake-up, tokens and nodes.

The snapshot is built from one consistent read, once per config version, and shared by every waiting gateway
(`FeedHub.snapshot`). Waiting gateways wake when the version moves: at once for a commit made through this
process's engine (a SQLAlchemy engine event sees the `installation.config_version` update commit), through
PostgreSQL `LISTEN/NOTIFY` for commits of other replicas (migration 0003's trigger notifies on commit), and
in any case through a poll every second.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import hmac
import logging
import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from pydantic import Field
from sqlalchemy import String, cast, event, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from keystile.domain.errors import AuthenticationError, ConflictError, NotFoundError
from keystile.domain.listing import ListQuery, ListSpec, Page
from keystile.domain.snapshot import SUPPORTED_FORMAT_VERSION
from keystile.domain.strategies import CONFIG_KEYS
from keystile.domain.time import rfc3339
from keystile.domain.urls import DISCOVERY_SUFFIX, split_issuer
from keystile.domain.validation import StrictModel, parse
from keystile.services import audit
from keystile.services.context import Actor, Ctx, Runtime
from keystile.store.listing import paginate
from keystile.store.models import (
    Application,
    AuthStrategy,
    Credential,
    DataPlaneNode,
    DataPlaneToken,
    Installation,
    PortalProductVersion,
    ProductVersion,
    Registration,
)
from keystile.store.types import utcnow

__all__ = [
    "NOTIFY_CHANNEL",
    "TOKEN_PREFIX",
    "BuiltSnapshot",
    "FeedHub",
    "authenticate",
    "build_snapshot",
    "create_token",
    "delete_token",
    "hub",
    "list_nodes",
    "list_tokens",
    "record_node",
]

log = logging.getLogger(__name__)

TOKEN_PREFIX = "kdp_"
NOTIFY_CHANNEL = "keystile_config"
POLL_SECONDS = 1.0
NODE_TTL = timedelta(hours=24)
STRATEGY_TABLE = "auth_strategies"
_HUB_KEY = "keystile.dataplane.hub"
_YIELD_EVERY = 5000
_BUMPED = "keystile.config_bumped"

TOKEN_LIST_SPEC = ListSpec(filters={"name": "string"}, sorts=("created_at", "name"))
NODE_LIST_SPEC = ListSpec(
    filters={"hostname": "string", "token_id": "uuid"},
    sorts=("last_seen_at", "hostname"),
    default_sort=("last_seen_at", True),
)


# ---- tokens ---------------------------------------------------------------------------------------------


class DataPlaneTokenCreate(StrictModel):
    name: str = Field(min_length=1, max_length=255)


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _token_view(row: DataPlaneToken) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "created_at": rfc3339(row.created_at),
        "last_used_at": rfc3339(row.last_used_at),
    }


async def create_token(ctx: Ctx, raw: Any) -> dict[str, Any]:
    """A new data-plane token; the answer holds the token, shown once (stored as SHA-256).

    Raises:
        ValidationError: a bad name.
        ConflictError: the name is taken.
    """
    body = parse(DataPlaneTokenCreate, raw)
    taken = (await ctx.session.execute(select(DataPlaneToken.id).where(DataPlaneToken.name == body.name))).first()
    if taken is not None:
        raise ConflictError(f"a data-plane token named {body.name!r} already exists")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = DataPlaneToken(id=uuid.uuid4(), name=body.name, token_sha256=_sha256(token), created_at=utcnow())
    ctx.session.add(row)
    audit.record(
        ctx,
        "data_plane_token.create",
        "data_plane_token",
        row.id,
        status_code=201,
        changes={"name": {"from": None, "to": row.name}},
    )
    await ctx.session.commit()
    return {**{k: v for k, v in _token_view(row).items() if k != "last_used_at"}, "token": token}


async def list_tokens(ctx: Ctx, query: ListQuery) -> Page:
    cols: dict[str, Any] = {"name": DataPlaneToken.name, "created_at": DataPlaneToken.created_at}
    stmt = select(DataPlaneToken).where(DataPlaneToken.revoked_at.is_(None))
    rows, total = await paginate(ctx.session, stmt, query, cols, DataPlaneToken.id)
    return Page([_token_view(r[0]) for r in rows], query.page_number, query.page_size, total)


async def delete_token(ctx: Ctx, token_id: uuid.UUID) -> None:
    """Revoke a token: the row goes, so every request with it (held long polls included) ends in 401."""
    row = await ctx.session.get(DataPlaneToken, token_id)
    if row is None:
        raise NotFoundError()
    await ctx.session.delete(row)
    audit.record(ctx, "data_plane_token.delete", "data_plane_token", row.id, status_code=204)
    await ctx.session.commit()
    existing = ctx.runtime.extras.get(_HUB_KEY)
    if isinstance(existing, FeedHub):
        existing.poke()


async def authenticate(runtime: Runtime, token: str) -> Actor:
    """The data plane a `kdp_…` token belongs to.

    Raises:
        AuthenticationError: unknown or revoked token.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) < len(TOKEN_PREFIX) + 40:
        raise AuthenticationError()
    digest = _sha256(token)
    async with runtime.sessions() as session:
        row = (
            await session.execute(select(DataPlaneToken).where(DataPlaneToken.token_sha256 == digest))
        ).scalar_one_or_none()
        if row is None or not hmac.compare_digest(row.token_sha256, digest) or row.revoked_at is not None:
            raise AuthenticationError()
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
            row.last_used_at = now
            await session.commit()
        return Actor("data_plane", str(row.id), row.name)


# ---- nodes ----------------------------------------------------------------------------------------------


def _node_view(row: DataPlaneNode) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "hostname": row.hostname,
        "version": row.version,
        "config_version": row.config_version,
        "last_seen_at": rfc3339(row.last_seen_at),
        "token_id": str(row.token_id) if row.token_id else None,
    }


def gateway_version(user_agent: str | None) -> str | None:
    """`keystile-gateway/1.2.3` → `1.2.3`; any other User-Agent is kept as given (truncated)."""
    if not user_agent:
        return None
    product, _, rest = user_agent.partition("/")
    if product == "keystile-gateway" and rest:
        return rest.split()[0][:64]
    return user_agent[:64]


async def record_node(
    runtime: Runtime,
    node_id: uuid.UUID,
    *,
    hostname: str | None,
    user_agent: str | None,
    config_version: int | None,
    token_id: uuid.UUID | None,
) -> None:
    """Insert or refresh a gateway node (`X-Keystile-Node-Id`)."""
    async with runtime.sessions() as session:
        row = await session.get(DataPlaneNode, node_id)
        if row is None:
            row = DataPlaneNode(id=node_id)
            session.add(row)
        row.hostname = hostname[:255] if hostname else row.hostname
        row.version = gateway_version(user_agent) or row.version
        if config_version is not None:
            row.config_version = config_version
        row.last_seen_at = utcnow()
        row.token_id = token_id
        await session.commit()


async def list_nodes(ctx: Ctx, query: ListQuery) -> Page:
    cols: dict[str, Any] = {
        "hostname": DataPlaneNode.hostname,
        "token_id": DataPlaneNode.token_id,
        "last_seen_at": DataPlaneNode.last_seen_at,
    }
    stmt = select(DataPlaneNode).where(DataPlaneNode.last_seen_at >= utcnow() - NODE_TTL)
    rows, total = await paginate(ctx.session, stmt, query, cols, DataPlaneNode.id)
    return Page([_node_view(r[0]) for r in rows], query.page_number, query.page_size, total)


# ---- the snapshot ---------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _strategy_entry(runtime: Runtime, row: AuthStrategy) -> dict[str, Any]:
    configs = dict(row.configs)
    if row.strategy_type == "key_auth":
        return {
            "id": str(row.id),
            "strategy_type": "key_auth",
            "key_names": list(configs.get("key_names") or ["apikey"]),
        }
    vault = runtime.vault

    def secret(name: str) -> str | None:
        stored = row.secrets.get(name)
        if stored is None:
            return None
        return vault.decrypt(stored, table=STRATEGY_TABLE, row_id=row.id, field=name)

    issuer, discovery = split_issuer(str(configs["issuer"]))
    names = configs.get("token_post_args_names") or []
    values = configs.get("token_post_args_values") or []
    audience = configs.get("audience", configs.get("audience_required"))
    settings = {
        "cache_tokens": bool(configs.get("cache_tokens", True)),
        "token_post_args": {str(k): str(v) for k, v in zip(names, values, strict=False)},
        "audience": _as_list(audience),
        "scopes_required": _as_list(configs.get("scopes_required")),
        "session_cookie_name": configs.get("session_cookie_name") or "session",
        "session_absolute_timeout": int(configs.get("session_absolute_timeout") or 3600),
        "session_secret": secret("session_secret"),
        "introspection_client_id": configs.get("introspection_client_id"),
        "introspection_client_secret": secret("introspection_client_secret"),
    }
    return {
        "id": str(row.id),
        "strategy_type": "openid_connect",
        "issuer": issuer,
        "discovery_url": discovery or issuer.rstrip("/") + DISCOVERY_SUFFIX,
        "credential_claim": list(configs.get("credential_claim") or ["client_id"]),
        "scopes": list(configs.get("scopes") or []),
        "auth_methods": list(configs.get("auth_methods") or []),
        "settings": settings,
    }


async def ensure_session_secrets(runtime: Runtime) -> None:
    """Give every openid_connect strategy offered for registration a generated `session_secret` (encrypted)."""
    async with runtime.sessions() as session:
        offered = select(PortalProductVersion.auth_strategy_id).where(
            PortalProductVersion.application_registration_enabled.is_(True),
            PortalProductVersion.auth_strategy_id.isnot(None),
        )
        rows = (
            await session.execute(
                select(AuthStrategy.id, AuthStrategy.secrets).where(
                    AuthStrategy.id.in_(offered), AuthStrategy.strategy_type == "openid_connect"
                )
            )
        ).all()
        missing = [sid for sid, stored in rows if "session_secret" not in (stored or {})]
        if not missing:
            return
        stmt = select(AuthStrategy).where(AuthStrategy.id.in_(missing))
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        for row in (await session.execute(stmt)).scalars():
            if "session_secret" in row.secrets:
                continue  # another replica generated it first
            value = base64.b64encode(os.urandom(32)).decode()
            encrypted = runtime.vault.encrypt(value, table=STRATEGY_TABLE, row_id=row.id, field="session_secret")
            row.secrets = {**row.secrets, "session_secret": encrypted}
        await session.commit()


async def build_snapshot(runtime: Runtime) -> dict[str, Any]:
    """The snapshot of gateway.md §3 at the current version, from one consistent read."""
    await ensure_session_secrets(runtime)
    async with runtime.sessions() as session:
        bind = session.bind
        if isinstance(bind, AsyncEngine) and bind.dialect.name == "postgresql":
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        # SQLite: the engine opens every transaction with BEGIN IMMEDIATE, so nothing commits in between
        inst = (await session.execute(select(Installation).where(Installation.id == 1))).scalar_one()
        version = int(inst.config_version)
        cache_key = runtime.vault.decrypt(
            inst.secrets["shared_cache_key"], table="installation", row_id=1, field="shared_cache_key"
        )
        versions = (
            (
                await session.execute(
                    select(ProductVersion)
                    .where(ProductVersion.gateway_service.isnot(None))
                    .order_by(ProductVersion.created_at, ProductVersion.id)
                )
            )
            .scalars()
            .all()
        )
        offered: dict[uuid.UUID, list[uuid.UUID]] = {}
        for vid, sid in await session.execute(
            select(PortalProductVersion.product_version_id, PortalProductVersion.auth_strategy_id)
            .where(
                PortalProductVersion.application_registration_enabled.is_(True),
                PortalProductVersion.auth_strategy_id.isnot(None),
            )
            .order_by(PortalProductVersion.created_at, PortalProductVersion.id)
        ):
            ids = offered.setdefault(vid, [])
            if sid is not None and sid not in ids:
                ids.append(sid)
        routes: list[dict[str, Any]] = []
        strategy_ids: list[uuid.UUID] = []
        for v in versions:
            service = v.gateway_service
            if not service:  # JSON null: the column stores Python None as a JSON value, not SQL NULL
                continue
            sids = offered.get(v.id, [])
            for sid in sids:
                if sid not in strategy_ids:
                    strategy_ids.append(sid)
            routes.append(
                {
                    "product_version_id": str(v.id),
                    "product_id": str(v.product_id),
                    "paths": list(service.get("paths") or []),
                    "methods": service.get("methods"),
                    "strip_path": bool(service.get("strip_path", True)),
                    "upstream_url": service["upstream_url"],
                    "connect_timeout_ms": int(service.get("connect_timeout_ms", 5000)),
                    "read_timeout_ms": int(service.get("read_timeout_ms", 60000)),
                    "auth_strategy_ids": [str(s) for s in sids],
                    "allow_anonymous": bool(service.get("allow_anonymous", False)),
                }
            )
        strategy_rows = {
            row.id: row
            for row in (await session.execute(select(AuthStrategy).where(AuthStrategy.id.in_(strategy_ids)))).scalars()
        }
        strategies = [
            _strategy_entry(runtime, strategy_rows[sid])
            for sid in strategy_ids
            if sid in strategy_rows and strategy_rows[sid].strategy_type in CONFIG_KEYS
        ]
        listed = [sid for sid in strategy_ids if sid in strategy_rows]
        conn = await session.connection()
        apps, registrations = await _applications(conn, listed)
        await session.rollback()
    return {
        "format_version": SUPPORTED_FORMAT_VERSION,
        "version": version,
        "generated_at": rfc3339(utcnow()),
        "shared_cache_key": cache_key,
        "routes": routes,
        "strategies": strategies,
        "applications": apps,
        "registrations": registrations,
    }


def _dashed(value: str) -> str:
    """32 hex digits (SQLite's UUID storage) as the dashed form: slicing in Python is several times cheaper than
    `substr` concatenation in SQLite and than a `uuid.UUID` per value (measured on 30,000 applications)."""
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"


def _same(value: str) -> str:
    return value


async def _applications(
    conn: AsyncConnection, strategy_ids: list[uuid.UUID]
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Active applications on the listed strategies with their live credentials, and their approved versions.

    Core statements with ids read as stored text (no UUID object per value): PostgreSQL casts `uuid` to the dashed
    form, SQLite's 32 hex digits are dashed here (rows are matched on the stored text, only output is dashed). This
    is the part of the snapshot that grows with the installation.
    """
    if not strategy_ids:
        return [], {}
    dash = _dashed if conn.dialect.name == "sqlite" else _same
    few: dict[str, str] = {}  # portals, strategies and versions: a handful of distinct values, dashed once each

    def dash_few(value: str) -> str:
        found = few.get(value)
        if found is None:
            found = few[value] = dash(value)
        return found

    def text(column: Any) -> Any:
        return cast(column, String)

    on_listed = (Application.status == "active", Application.auth_strategy_id.in_(strategy_ids))
    listed_apps = select(Application.id).where(*on_listed).scalar_subquery()
    apps: dict[str, dict[str, Any]] = {}
    rows = await conn.execute(
        select(
            text(Application.id),
            Application.name,
            text(Application.developer_id),
            text(Application.portal_id),
            text(Application.auth_strategy_id),
            Application.credentials_not_before,
            Application.reference_id,
        )
        .where(*on_listed)
        .order_by(Application.created_at, Application.id)
    )
    for n, (aid, name, dev, portal, sid, not_before, reference) in enumerate(rows):
        if n % _YIELD_EVERY == 0:
            await asyncio.sleep(0)  # a large installation: let other requests run between slices
        apps[aid] = {
            "id": dash(aid),
            "name": name,
            "developer_id": dash(dev),
            "portal_id": dash_few(portal),
            "auth_strategy_id": dash_few(sid),
            "credentials_not_before": rfc3339(not_before),
            "credentials": [{"type": "client_id", "id": reference, "value": reference}] if reference else [],
        }
    if not apps:
        return [], {}
    creds = await conn.execute(
        select(
            text(Credential.application_id),
            text(Credential.id),
            Credential.key_sha256,
            Credential.client_id,
            Credential.expires_at,
        )
        .where(
            Credential.application_id.in_(listed_apps), Credential.revoked_at.is_(None), Credential.status != "revoked"
        )
        .order_by(Credential.created_at, Credential.id)
    )
    for n, (aid, cid, key_sha256, client_id, expires_at) in enumerate(creds):
        if n % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
        entry = apps.get(aid)
        if entry is None:
            continue
        if key_sha256:
            entry["credentials"].append(
                {"type": "api_key_sha256", "id": dash(cid), "value": key_sha256, "expires_at": rfc3339(expires_at)}
            )
        elif client_id and all(c["value"] != client_id for c in entry["credentials"]):
            entry["credentials"].append({"type": "client_id", "id": client_id, "value": client_id})
    registrations: dict[str, list[str]] = {}
    regs = await conn.execute(
        select(text(Registration.application_id), text(Registration.product_version_id))
        .where(Registration.application_id.in_(listed_apps), Registration.status == "approved")
        .order_by(Registration.created_at, Registration.id)
    )
    for n, (aid, vid) in enumerate(regs):
        if n % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
        entry = apps.get(aid)
        if entry is not None:
            registrations.setdefault(entry["id"], []).append(dash_few(vid))
    return list(apps.values()), registrations


@dataclass(frozen=True)
class BuiltSnapshot:
    """One version's snapshot, encoded once and shared by every gateway that asks for it."""

    version: int
    body: bytes
    gzipped: bytes

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def encode_snapshot(document: dict[str, Any]) -> BuiltSnapshot:
    """Encode (compact UTF-8 JSON, and gzip). Gateways validate what they receive against `domain/snapshot.py` and
    keep their running config on a refusal; the tests read every feed answer with that same parser."""
    body = orjson.dumps(document)
    return BuiltSnapshot(int(document["version"]), body, gzip.compress(body, compresslevel=1))


# ---- the feed's wake-up --------------------------------------------------------------------------------


class FeedHub:
    """Per-runtime state of the config feed: the cached snapshot and the wake-up of held long polls."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.version: int | None = None
        self.notifications = 0
        self.listening = False
        self._cache: BuiltSnapshot | None = None
        self._build_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._waiters: dict[uuid.UUID | None, int] = {}
        self._revoked: set[uuid.UUID] = set()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[tuple[Any, str, Callable[..., None]]] = []

    # -- versions and snapshots

    async def current_version(self) -> int:
        async with self.runtime.sessions() as session:
            value = (
                await session.execute(select(Installation.config_version).where(Installation.id == 1))
            ).scalar_one()
            await session.rollback()
        return int(value)

    async def snapshot(self) -> BuiltSnapshot:
        """The snapshot at the current version: built once per version, shared by concurrent callers."""
        current = await self.current_version()
        cached = self._cache
        if cached is not None and cached.version >= current:
            return cached
        async with self._build_lock:
            cached = self._cache
            if cached is not None and cached.version >= current:
                return cached
            document = await build_snapshot(self.runtime)
            # JSON, schema check and gzip are CPU work that grows with the installation: off the event loop
            built = await asyncio.to_thread(encode_snapshot, document)
            self._cache = built
            return built

    # -- waiting

    def poke(self) -> None:
        """Ask the watcher to look again now (a local commit, a notification, a revoked token)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._wake.set)

    async def wait(self, token_id: uuid.UUID | None, known: int, seconds: float) -> str:
        """Hold until the version passes `known` (`changed`), the token goes (`revoked`) or time is up (`timeout`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self._waiters[token_id] = self._waiters.get(token_id, 0) + 1
        self._ensure_running(loop)
        try:
            while True:
                if token_id is not None and token_id in self._revoked:
                    return "revoked"
                if self.version is not None and self.version > known:
                    return "changed"
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return "timeout"
                changed = self._changed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)
        finally:
            self._waiters[token_id] -= 1
            if self._waiters[token_id] <= 0:
                del self._waiters[token_id]

    def _ensure_running(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is None or self._task.done():
            self._loop = loop
            self._wake.set()  # read the version at once: it is the baseline the waiters compare with
            self._task = loop.create_task(self._watch(), name="keystile-feed-watch")

    async def _watch(self) -> None:
        self._attach()
        listener: asyncio.Task[None] | None = None
        if self.runtime.engine.dialect.name == "postgresql":
            listener = asyncio.get_running_loop().create_task(self._listen(), name="keystile-feed-listen")
        try:
            while self._waiters:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
                self._wake.clear()
                if not self._waiters:
                    break
                try:
                    version, alive = await self._poll()
                except Exception:  # the database is away: keep the long polls held, try again in a second
                    log.warning("config feed: cannot read the config version", exc_info=True)
                    continue
                gone = {t for t in self._waiters if t is not None and t not in alive}
                if (self.version is None or version > self.version) or gone - self._revoked:
                    self.version = version if self.version is None else max(self.version, version)
                    self._revoked |= gone
                    signal, self._changed = self._changed, asyncio.Event()
                    signal.set()
        finally:
            self._detach()
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    async def _poll(self) -> tuple[int, set[uuid.UUID]]:
        tokens = [t for t in self._waiters if t is not None]
        async with self.runtime.sessions() as session:
            version = (
                await session.execute(select(Installation.config_version).where(Installation.id == 1))
            ).scalar_one()
            alive: set[uuid.UUID] = set()
            if tokens:
                alive = set(
                    (
                        await session.execute(
                            select(DataPlaneToken.id).where(
                                DataPlaneToken.id.in_(tokens), DataPlaneToken.revoked_at.is_(None)
                            )
                        )
                    ).scalars()
                )
            await session.rollback()
        return int(version), alive

    async def _listen(self) -> None:
        """PostgreSQL LISTEN on a connection of its own; the one-second poll covers any failure here."""
        import psycopg

        url = self.runtime.settings.resolved_database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                self.listening = True
                async for _ in conn.notifies():
                    self.notifications += 1
                    self._wake.set()
        except psycopg.Error:
            log.warning("config feed: LISTEN %s failed; falling back to polling every second", NOTIFY_CHANNEL)
        finally:
            self.listening = False

    # -- in-process commits (engine events)

    def _attach(self) -> None:
        if self._listeners:
            return
        target = self.runtime.engine.sync_engine

        def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            head = statement.lstrip()[:64].upper()
            if head.startswith("UPDATE INSTALLATION") and "CONFIG_VERSION" in statement.upper():
                conn.info[_BUMPED] = True

        def on_commit(conn: Any, *args: Any) -> None:
            if conn.info.pop(_BUMPED, False):
                self.poke()

        def on_rollback(conn: Any, *args: Any) -> None:
            conn.info.pop(_BUMPED, None)

        self._listeners = [
            (target, "before_cursor_execute", on_execute),
            (target, "commit", on_commit),
            (target, "release_savepoint", on_commit),
            (target, "rollback", on_rollback),
        ]
        for tgt, name, fn in self._listeners:
            event.listen(tgt, name, fn)

    def _detach(self) -> None:
        for tgt, name, fn in self._listeners:
            if event.contains(tgt, name, fn):
                event.remove(tgt, name, fn)
        self._listeners = []


def hub(runtime: Runtime) -> FeedHub:
    """The runtime's feed hub (made on first use)."""
    existing = runtime.extras.get(_HUB_KEY)
    if isinstance(existing, FeedHub):
        return existing
    made = FeedHub(runtime)
    runtime.extras[_HUB_KEY] = made
    return made
