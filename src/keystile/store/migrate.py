"""Schema migrations (Alembic), run by `keystile migrate` and at `keystile serve` start.

On PostgreSQL the run holds an advisory lock, so replicas starting together migrate once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["alembic_config", "check", "revision", "upgrade"]

_MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x6B65797374696C65 & 0x7FFFFFFFFFFFFFFF  # "keystile"


def alembic_config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _locked(connection: Connection, fn: Any) -> None:
    """Run `fn` under the session-level advisory lock, committing before the lock goes: a replica that waited on
    it must see this run's schema, not migrate again beside an uncommitted one."""
    if connection.dialect.name != "postgresql":
        fn(alembic_config(connection))
        return
    connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_ID})
    try:
        fn(alembic_config(connection))
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_ID})
        connection.commit()


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the database to the newest schema."""
    async with engine.connect() as conn:
        await conn.run_sync(_locked, lambda cfg: command.upgrade(cfg, "head"))
        await conn.commit()


async def check(engine: AsyncEngine) -> None:
    """Raise when the tables in models.py and the migrations disagree (`alembic check`)."""
    async with engine.connect() as conn:
        await conn.run_sync(lambda c: command.check(alembic_config(c)))


async def revision(engine: AsyncEngine, message: str) -> None:
    """Autogenerate a new migration against an up-to-date database (developer tool)."""
    async with engine.connect() as conn:
        await conn.run_sync(lambda c: command.revision(alembic_config(c), message=message, autogenerate=True))
