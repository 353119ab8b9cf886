"""One refresh token presented at once to two control-plane replicas (restored browser tabs behind a load
balancer): one rotation between them, every request gets the same new session, and nothing is taken for reuse.
Each replica is a Runtime with an engine of its own on one database, as two `keystile serve` processes are."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from keystile.services import developers
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
    name = f"keystile_test_refresh_{testrun_uid[:8]}"
    url = create_pg_database(name) if request.param == "postgres" else f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"
    engines = [create_engine(url, pool_size=REQUESTS_EACH, max_overflow=0) for _ in range(REPLICAS)]
    settings = Settings(data_dir=tmp_path, database_url=url)
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
