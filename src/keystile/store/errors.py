"""Driver errors turned into domain errors at the storage boundary."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from keystile.domain.errors import ConflictError

__all__ = ["commit_or_conflict", "database_unavailable"]

_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "unable to open database", "disk I/O error")


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be used right now (a retry may succeed), not a bug.

    PostgreSQL: a lost or refused connection, an administrator shutdown, a serialization failure (psycopg raises
    these as OperationalError); no free pool connection. SQLite: a lock held too long or an unreadable file, not
    the `no such table` kind of OperationalError.
    """
    if isinstance(exc, sa_exc.TimeoutError):  # the pool had no connection to give within its timeout
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if isinstance(exc.orig, sqlite3.Error):
        return isinstance(exc.orig, sqlite3.OperationalError) and str(exc.orig).startswith(_SQLITE_TRANSIENT)
    return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)


@asynccontextmanager
async def commit_or_conflict(session: AsyncSession, detail: str) -> AsyncIterator[None]:
    """Flush/commit inside; a unique or foreign-key violation becomes ConflictError(detail)."""
    try:
        yield
    except IntegrityError as exc:
        await session.rollback()
        raise ConflictError(detail) from exc
