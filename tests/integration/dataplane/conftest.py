"""A control plane on a database whose commits are real (long polls wake on commits, and PostgreSQL's
LISTEN/NOTIFY only delivers on a real commit), one per backend and pytest-xdist worker, shared by a module."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from keystile.app import create_app
from keystile.services import admin_tokens, installation
from keystile.services.context import Runtime
from keystile.settings import Settings
from keystile.store import migrate
from tests.database import TEST_KEY, create_pg_database, drop_pg_database


def _settings(data_dir: Path, url: str) -> Settings:
    return Settings(data_dir=data_dir, database_url=url, secret_key=base64.b64encode(TEST_KEY).decode())


@dataclass
class Live:
    runtime: Runtime
    client: httpx.AsyncClient
    url: str
    backend: str
    data_dir: Path

    def replica(self) -> Runtime:
        """Another control-plane replica on the same database (its own engine and pool)."""
        return Runtime.build(_settings(self.data_dir, self.url))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> AsyncIterator[Live]:
    data_dir = tmp_path_factory.mktemp("live")
    name = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{data_dir / 'keystile.db'}"
    else:
        name = f"keystile_dp_{worker_id}_{uuid.uuid4().hex[:8]}"
        url = create_pg_database(name)
    settings = _settings(data_dir, url)
    rt = Runtime.build(settings)
    try:
        await migrate.upgrade(rt.engine)
        await installation.ensure(rt)
        app = create_app(settings, runtime=rt)
        _, token = await admin_tokens.create(rt, f"tests-{uuid.uuid4().hex[:8]}")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"Authorization": f"Bearer {token}"}
        ) as client:
            yield Live(rt, client, url, request.param, data_dir)
    finally:
        await rt.close()
        if name is not None:
            drop_pg_database(name)
