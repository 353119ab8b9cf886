"""Refresh rotation with more than one request at a time, on a real database: one refresh token presented at once
to two control-plane replicas (restored browser tabs behind a load balancer) gives one rotation and the same new
session to every request; a sign-out racing a rotation wins; a key rotation keeps the grace working. Each replica
is a Runtime with an engine of its own on one database, as two `keystile serve` processes are."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from keystile.domain.errors import AuthenticationError
from keystile.services import developers, keys
from keystile.services.context import SYSTEM, Runtime
from keystile.settings import Settings
from keystile.store import migrate
from keystile.store.db import create_engine, session_factory
from keystile.store.models import AuditEvent, DeveloperToken
from keystile.store.vault import Vault
from tests.database import TEST_KEY, create_pg_database, drop_pg_database
from tests.portal_helpers import approved_developer

REPLICAS = 2
REQUESTS_EACH = 4


@pytest.fixture(params=["sqlite", "postgres"])
async def replicas(request: pytest.FixtureRequest, tmp_path: Path, testrun_uid: str) -> AsyncIterator[list[Runtime]]:
    name = f"keystile_test_refresh_{testrun_uid[:8]}_{uuid.uuid4().hex[:8]}"  # tests of this file run side by side
    url = create_pg_database(name) if request.param == "postgres" else f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"
    engines = [create_engine(url, pool_size=REQUESTS_EACH, max_overflow=0) for _ in range(REPLICAS)]
    settings = Settings(data_dir=tmp_path, database_url=url, secret_key=base64.b64encode(TEST_KEY).decode())
    runtimes = [Runtime(settings, e, session_factory(e), Vault(TEST_KEY), httpx.AsyncClient()) for e in engines]
    try:
        await migrate.upgrade(engines[0])
        yield runtimes
    finally:
        for rt in runtimes:
            await rt.close()
            await rt.engine.dispose()
        if request.param == "postgres":
            drop_pg_database(name)


async def test_replicas_refreshing_one_token_together_share_one_rotation(replicas: list[Runtime]) -> None:
    dev = await approved_developer(replicas[0])
    portal = await developers.portal_by_host(replicas[0], None)

    async def refresh(rt: Runtime) -> developers.SessionTokens:
        async with rt.unit(SYSTEM) as ctx:
            return await developers.refresh(ctx, portal, dev.refresh_token)

    got = await asyncio.gather(*(refresh(rt) for rt in replicas for _ in range(REQUESTS_EACH)))
    assert len({(t.access_token, t.refresh_token) for t in got}) == 1
    tokens = got[0]
    assert tokens.refresh_token != dev.refresh_token
    for rt in replicas:
        who = await developers.session_for_token(rt, portal, tokens.access_token)
        assert who.developer_id == dev.developer_id
    async with replicas[0].sessions() as session:
        refresh_rows = await session.execute(
            select(func.count()).select_from(DeveloperToken).where(DeveloperToken.kind == "refresh")
        )
        assert refresh_rows.scalar() == 2  # the spent token (kept for reuse detection) and its one successor
        failures = await session.execute(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.outcome == "failure")
        )
        assert failures.scalar() == 0


async def test_a_sign_out_racing_a_rotation_ends_the_session(
    replicas: list[Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rotation and the sign-out both take the developer's lock first: no deadlock (PostgreSQL answered the
    sign-out with DeadlockDetected when the rotation locked its token row first), and the renewed session dies."""
    rt = replicas[0]
    dev = await approved_developer(rt)
    portal = await developers.portal_by_host(rt, None)
    token_row = developers._token_row

    async def slow_token_row(ctx, token, kind, *, fresh=False):
        row = await token_row(ctx, token, kind, fresh=fresh)
        if fresh:  # read again under the developer's lock: hold it while the sign-out arrives
            await asyncio.sleep(0.5)
        return row

    monkeypatch.setattr(developers, "_token_row", slow_token_row)

    async def renew() -> developers.SessionTokens:
        async with rt.unit(SYSTEM) as ctx:
            return await developers.refresh(ctx, portal, dev.refresh_token)

    async def sign_out() -> None:
        await asyncio.sleep(0.1)  # while the rotation holds the lock
        async with replicas[1].unit(SYSTEM) as ctx:
            await developers.logout(ctx, portal, None, dev.refresh_token)

    renewed, _ = await asyncio.gather(renew(), sign_out())
    monkeypatch.undo()
    with pytest.raises(AuthenticationError):  # signed out after the rotation: the renewed session is gone too
        await developers.session_for_token(rt, portal, renewed.access_token)


async def successors(rt: Runtime) -> list[str]:
    async with rt.sessions() as session:
        rows = await session.execute(select(DeveloperToken.secrets).where(DeveloperToken.secrets.is_not(None)))
        return [secrets["successor"] for secrets in rows.scalars()]


async def test_the_grace_survives_a_key_rotation(replicas: list[Runtime]) -> None:
    """`keystile keys rotate` re-encrypts a kept successor; a replica still on the old key refuses the second
    presentation without ending the session, one on the new key gives the same session back."""
    rt = replicas[0]
    dev = await approved_developer(rt)
    portal = await developers.portal_by_host(rt, None)
    async with rt.unit(SYSTEM) as ctx:
        first = await developers.refresh(ctx, portal, dev.refresh_token)
    before = await successors(rt)
    new_key = os.urandom(32)
    assert await keys.rotate(rt.settings, base64.b64encode(new_key).decode(), "test") >= 1
    after = await successors(rt)
    assert len(before) == len(after) == 1 and before != after
    async with rt.unit(SYSTEM) as ctx:  # this replica has not been given the new key yet
        with pytest.raises(AuthenticationError):
            await developers.refresh(ctx, portal, dev.refresh_token)
    assert (await developers.session_for_token(rt, portal, first.access_token)).developer_id == dev.developer_id
    rt.vault = Vault(new_key)
    async with rt.unit(SYSTEM) as ctx:
        again = await developers.refresh(ctx, portal, dev.refresh_token)
    assert (again.access_token, again.refresh_token) == (first.access_token, first.refresh_token)
