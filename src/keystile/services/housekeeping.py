"""Periodic clean-up that every replica may run (each statement is idempotent): expired audit events, old throttle
counters, developer tokens (sessions, verification and reset links) long past their expiry, and the successor
sessions rotated refresh tokens keep past their reuse grace."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import SQLAlchemyError

from keystile.services import audit, throttle
from keystile.services.context import SYSTEM, Runtime
from keystile.services.developers import REFRESH_REUSE_GRACE
from keystile.store.models import DeveloperToken
from keystile.store.types import utcnow

__all__ = ["EVERY", "run_loop", "run_once"]

log = logging.getLogger(__name__)
EVERY = 6 * 3600.0
TOKEN_GRACE = timedelta(days=1)


async def run_once(runtime: Runtime) -> dict[str, int]:
    """One round; how many rows each step removed."""
    removed = {"audit_events": await audit.purge_expired(runtime)}
    async with runtime.unit(SYSTEM) as ctx:
        removed["throttle_events"] = await throttle.prune(ctx)
        result = await ctx.session.execute(
            delete(DeveloperToken).where(DeveloperToken.expires_at < utcnow() - TOKEN_GRACE)
        )
        removed["developer_tokens"] = int(getattr(result, "rowcount", 0) or 0)
        result = await ctx.session.execute(
            update(DeveloperToken)
            .where(DeveloperToken.secrets.is_not(None), DeveloperToken.used_at < utcnow() - REFRESH_REUSE_GRACE)
            .values(secrets=None)
        )
        removed["refresh_successors"] = int(getattr(result, "rowcount", 0) or 0)
        await ctx.session.commit()
    return removed


async def run_loop(runtime: Runtime, *, every: float = EVERY) -> None:
    """`run_once` at start and then every `every` seconds, until cancelled."""
    while True:
        try:
            removed = await run_once(runtime)
        except SQLAlchemyError:
            log.exception("housekeeping failed; retrying at the next round")
        else:
            if any(removed.values()):
                log.info("housekeeping removed expired rows", extra={"removed": removed})
        await asyncio.sleep(every)
