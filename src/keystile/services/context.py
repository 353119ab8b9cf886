"""The runtime services share (engine, sessions, vault, HTTP client) and the per-call context."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from keystile.dcr.base import TokenCache
from keystile.oidc.discovery import DiscoveryCache
from keystile.settings import Settings
from keystile.store.db import create_engine, readonly_session_factory, session_factory
from keystile.store.vault import Vault, load_vault

__all__ = ["SYSTEM", "Actor", "Ctx", "Runtime"]


@dataclass(frozen=True)
class Actor:
    """Who acts: `admin_token`, `developer`, `data_plane` or `system`."""

    type: str
    id: str | None = None
    name: str | None = None


SYSTEM = Actor("system", None, "keystile")


@dataclass
class Ctx:
    """One unit of work: a session (one transaction unless a service commits), who acts and why."""

    runtime: Runtime
    session: AsyncSession
    actor: Actor
    trace_id: str | None = None
    client_ip: str | None = None

    @property
    def vault(self) -> Vault:
        return self.runtime.vault

    async def before_idp_call(self) -> None:
        """End what the session has only read before waiting on an IdP: the IdP may take its whole timeout, and an
        open transaction would hold its locks that long (on SQLite the database's write lock: every other writer
        would wait, then fail). Objects stay loaded (`expire_on_commit=False`); the next statement starts a new
        transaction. A session holding unsaved changes is left alone: they must not be saved before the IdP
        answered."""
        session = self.session
        if session.in_transaction() and not (session.new or session.dirty or session.deleted):
            await session.commit()


@dataclass
class Runtime:
    """Long-lived objects built once per process by `create_app` or the CLI."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    vault: Vault
    http: httpx.AsyncClient
    read_sessions: async_sessionmaker[AsyncSession] | None = None
    token_cache: TokenCache = field(default_factory=TokenCache)
    discovery: DiscoveryCache = field(default_factory=DiscoveryCache)
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, *, http: httpx.AsyncClient | None = None) -> Runtime:
        settings.check()
        engine = create_engine(settings.resolved_database_url)
        timeout = httpx.Timeout(
            connect=settings.idp_connect_timeout,
            read=settings.idp_read_timeout,
            write=settings.idp_write_timeout,
            pool=settings.idp_pool_timeout,
        )
        client = http or httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        return cls(
            settings,
            engine,
            session_factory(engine),
            load_vault(settings),
            client,
            read_sessions=readonly_session_factory(engine),
        )

    @asynccontextmanager
    async def unit(
        self, actor: Actor, trace_id: str | None = None, client_ip: str | None = None, *, readonly: bool = False
    ) -> AsyncIterator[Ctx]:
        """A context whose session is rolled back unless the service committed. `readonly` work may run
        concurrently with other readers on SQLite (it may still write, e.g. a last-used timestamp)."""
        factory = self.read_sessions if readonly and self.read_sessions is not None else self.sessions
        async with factory() as session:
            yield Ctx(self, session, actor, trace_id, client_ip)

    async def close(self) -> None:
        await self.http.aclose()
        await self.engine.dispose()
