"""Several control-plane replicas share one outbox on PostgreSQL: entries are claimed with `SELECT … FOR UPDATE
SKIP LOCKED`, so a claimer never waits for, nor takes, an entry another one holds (ARCHITECTURE.md, Background
work). Runs on a database of its own (real separate connections, nothing rolled back)."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from keystile.services import outbox
from keystile.services.context import Runtime
from keystile.settings import Settings
from keystile.store import migrate
from keystile.store.db import create_engine, session_factory
from keystile.store.models import IdpOperation
from keystile.store.vault import Vault
from tests.database import create_pg_database, drop_pg_database

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg_runtime(tmp_path):
    name = f"keystile_claims_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = create_pg_database(name)
    engine = create_engine(url, pool_size=4, max_overflow=2)
    await migrate.upgrade(engine)
    rt = Runtime(
        Settings(data_dir=tmp_path, database_url=url),
        engine,
        session_factory(engine),
        Vault(bytes(32)),
        httpx.AsyncClient(),
    )
    try:
        yield rt
    finally:
        await rt.http.aclose()
        await engine.dispose()
        drop_pg_database(name)


async def test_claims_skip_rows_another_replica_holds_and_never_share_one(pg_runtime):
    rt = pg_runtime
    past = datetime.now(UTC) - timedelta(seconds=5)
    async with rt.sessions() as session:
        ids = [uuid.uuid4() for _ in range(6)]
        for i, op_id in enumerate(ids):
            session.add(
                IdpOperation(
                    id=op_id,
                    operation="sweep",
                    application_id=uuid.uuid4(),
                    next_attempt_at=past,
                    created_at=past + timedelta(milliseconds=i),
                )
            )
        await session.commit()

    # another replica is in the middle of claiming the two oldest entries
    async with rt.sessions() as holder:
        held = (
            (await holder.execute(select(IdpOperation.id).where(IdpOperation.id.in_(ids[:2])).with_for_update()))
            .scalars()
            .all()
        )
        assert sorted(held) == sorted(ids[:2])
        claimed = await asyncio.wait_for(outbox.claim(rt, limit=10), timeout=5)  # does not wait for the holder
        assert sorted(claimed) == sorted(ids[2:])
        await holder.rollback()

    # two replicas at once: every remaining entry is claimed exactly once, the leased ones by nobody
    first, second = await asyncio.gather(outbox.claim(rt, limit=10), outbox.claim(rt, limit=10))
    assert sorted(first + second) == sorted(ids[:2])
    assert not set(first) & set(second)
    assert await outbox.claim(rt, limit=10) == []
