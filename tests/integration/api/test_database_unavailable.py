"""A database that cannot be reached answers 503 with `Retry-After` (problem+json on the APIs, a page on the pages),
not a bare 500: clients and load balancers know to retry. The PostgreSQL restart test
(`tests/integration/faults/test_postgres_restart.py`) shows the same answers during a real restart."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import httpx
import pytest
from sqlalchemy import exc as sa_exc

from keystile.app import create_app
from keystile.services.context import Runtime
from keystile.settings import Settings
from keystile.store.errors import database_unavailable


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def unreachable(tmp_path: Path):
    """The control plane on a PostgreSQL URL where nothing listens (as during a restart)."""
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/keystile"
    rt = Runtime.build(Settings(data_dir=tmp_path, database_url=url))
    app = create_app(rt.settings, runtime=rt)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        yield client
    await rt.close()


async def test_apis_answer_503_problem_with_retry_after(unreachable: httpx.AsyncClient) -> None:
    for method, path, headers in (
        ("GET", "/v2/dcr-providers", {"Authorization": "Bearer kpat_" + "A" * 43}),
        ("POST", "/api/v2/developer/authenticate", {"X-Requested-With": "t"}),
    ):
        body = {"username": "a@example.com", "password": "p" * 12} if method == "POST" else None
        r = await unreachable.request(method, path, headers=headers, json=body)
        assert r.status_code == 503, (path, r.status_code, r.text[:300])
        assert r.headers["retry-after"] == "2"
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["status"] == 503 and "nothing was changed" in problem["detail"]
        assert problem["instance"].startswith("keystile:trace:")


async def test_pages_answer_a_503_page(unreachable: httpx.AsyncClient) -> None:
    r = await unreachable.get("/")
    assert r.status_code == 503, r.text[:300]
    assert r.headers["retry-after"] == "2"
    assert r.headers["content-type"].startswith("text/html")
    assert "Retry in a few seconds" in r.text


def test_only_transient_driver_errors_count_as_unavailable() -> None:
    def wrap(orig: Exception, cls: type[sa_exc.DBAPIError] = sa_exc.OperationalError) -> sa_exc.DBAPIError:
        return cls("SELECT 1", {}, orig)

    assert database_unavailable(wrap(sqlite3.OperationalError("database is locked")))
    assert not database_unavailable(wrap(sqlite3.OperationalError("no such table: applications")))
    assert not database_unavailable(wrap(sqlite3.IntegrityError("UNIQUE constraint failed"), sa_exc.IntegrityError))
    assert database_unavailable(sa_exc.TimeoutError("QueuePool limit reached"))
    assert not database_unavailable(ValueError("not a database error"))
