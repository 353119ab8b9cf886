"""Database fixtures: every storage test runs on SQLite and PostgreSQL.

Migrations run once per backend and pytest-xdist worker; each test runs inside an outer transaction that is
rolled back at the end, with services' commits turned into SAVEPOINT releases (SQLAlchemy's "joining a
session into an external transaction" recipe; on SQLite our engine makes pysqlite emit real SAVEPOINTs).
PostgreSQL comes from KEYSTILE_TEST_DATABASE_URL (default postgres@127.0.0.1:5432); each worker creates and
drops its own database `keystile_test_<worker>_<run>` and never touches another.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from keystile.services import installation
from keystile.services.context import Runtime
from keystile.settings import Settings
from keystile.store import migrate
from keystile.store.db import create_engine
from keystile.store.vault import Vault
from tests.conftest import missing_service

PG_ADMIN_URL = os.environ.get("KEYSTILE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TEST_KEY = bytes(range(32))


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def pg_database_url(name: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def create_pg_database(name: str) -> str:
    """Create (fresh) a PostgreSQL database for this worker; the URL to it. Skips/fails when unreachable."""
    try:
        with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        missing_service(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    return pg_database_url(name)


def drop_pg_database(name: str) -> None:
    with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def db_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, worker_id: str, testrun_uid: str
) -> AsyncIterator[AsyncEngine]:
    """A migrated engine per backend (session scope)."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqlite") / "keystile.db"
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await migrate.upgrade(engine)
        yield engine
        await engine.dispose()
        return
    # one database per worker and run: two runs on one machine (a developer's and CI's) never share one
    name = f"keystile_test_{worker_id}_{testrun_uid[:8]}"
    url = create_pg_database(name)
    engine = create_engine(url, pool_size=2, max_overflow=2)
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()
    drop_pg_database(name)


@pytest.fixture
async def runtime(db_engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A Runtime whose every session joins one outer transaction, rolled back after the test."""
    async with db_engine.connect() as conn:
        outer = await conn.begin()
        sessions = async_sessionmaker(
            bind=conn, expire_on_commit=False, autoflush=False, join_transaction_mode="create_savepoint"
        )
        settings = Settings(data_dir=tmp_path, database_url=db_engine.url.render_as_string(hide_password=False))
        http = httpx.AsyncClient(timeout=httpx.Timeout(5.0))
        rt = Runtime(settings, db_engine, sessions, Vault(TEST_KEY), http)
        await installation.ensure(rt)
        try:
            yield rt
        finally:
            await http.aclose()
            if outer.is_active:
                await outer.rollback()
