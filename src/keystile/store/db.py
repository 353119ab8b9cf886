"""Engines and sessions. SQLite (aiosqlite) by default, PostgreSQL (psycopg 3) in production."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

__all__ = ["READONLY_OPTION", "create_engine", "readonly_session_factory", "session_factory"]

READONLY_OPTION = "keystile_readonly"


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT; SQLAlchemy documents this workaround:
    # disable it and emit BEGIN ourselves (docs: "Serializable isolation / Savepoints / Transactional DDL").
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    # Writers take the lock up front (no SQLITE_BUSY_SNAPSHOT when a read-then-write transaction upgrades);
    # read-only work (engine option `keystile_readonly`) starts deferred so readers run side by side in WAL.
    if conn.get_execution_options().get(READONLY_OPTION):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, *, echo: bool = False, **kwargs: Any) -> AsyncEngine:
    """An async engine for `url`, with SQLite made to behave (foreign keys, WAL, real SAVEPOINTs)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo, **kwargs)
        sync: Engine = engine.sync_engine
        event.listen(sync, "connect", _sqlite_on_connect)
        event.listen(sync, "begin", _sqlite_on_begin)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, echo=echo, **kwargs)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def readonly_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for requests that only read (on SQLite their transactions start deferred)."""
    return async_sessionmaker(
        engine.execution_options(**{READONLY_OPTION: True}), expire_on_commit=False, autoflush=False
    )
