"""Driver errors turned into domain errors at the storage boundary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from keystile.domain.errors import ConflictError

__all__ = ["commit_or_conflict"]


@asynccontextmanager
async def commit_or_conflict(session: AsyncSession, detail: str) -> AsyncIterator[None]:
    """Flush/commit inside; a unique or foreign-key violation becomes ConflictError(detail)."""
    try:
        yield
    except IntegrityError as exc:
        await session.rollback()
        raise ConflictError(detail) from exc
