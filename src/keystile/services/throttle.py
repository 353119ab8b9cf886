"""Windowed attempt limits kept in the database (`throttle_events`), so every control-plane replica counts the
same attempts (portal-api.md §1, Extension: throttling).

`check(ctx, key, limit, window)` refuses when `limit` events of `key` fall inside the last `window`;
`hit(ctx, key)` counts one more in the caller's transaction. Keys name what is counted, e.g.
`login:ip:203.0.113.7` or `login:account:<portal id>:<email>`.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from keystile.domain.errors import ThrottledError
from keystile.services.context import Ctx
from keystile.store.models import ThrottleEvent
from keystile.store.types import utcnow

__all__ = ["check", "hit", "prune"]

_KEY_MAX = 320
RETENTION = timedelta(days=1)  # longer than every window in use


def _key(key: str) -> str:
    return key[:_KEY_MAX]


async def check(ctx: Ctx, key: str, limit: int, window: timedelta) -> None:
    """Raises ThrottledError (429, `Retry-After` = seconds until the oldest counted event leaves the window)
    when `key` already has `limit` events within `window`."""
    now = utcnow()
    since = now - window
    count = (
        await ctx.session.execute(
            select(func.count(ThrottleEvent.id)).where(ThrottleEvent.key == _key(key), ThrottleEvent.created_at > since)
        )
    ).scalar_one()
    if int(count) < limit:
        return
    # a slot frees when the (count - limit + 1)-th oldest event in the window leaves it
    blocking = await _nth_oldest(ctx, key, since, int(count) - limit)
    retry = max(1, math.ceil(((blocking + window) - now).total_seconds()))
    raise ThrottledError(f"Too many attempts; try again in {retry} seconds", retry_after=retry)


async def _nth_oldest(ctx: Ctx, key: str, since: datetime, offset: int) -> datetime:
    value: datetime = (
        await ctx.session.execute(
            select(ThrottleEvent.created_at)
            .where(ThrottleEvent.key == _key(key), ThrottleEvent.created_at > since)
            .order_by(ThrottleEvent.created_at.asc())
            .offset(offset)
            .limit(1)
        )
    ).scalar_one()
    return value


async def hit(ctx: Ctx, key: str) -> None:
    """Count one event of `key` now (in the caller's transaction); the key's events older than any window go."""
    now = utcnow()
    await ctx.session.execute(
        delete(ThrottleEvent).where(ThrottleEvent.key == _key(key), ThrottleEvent.created_at < now - RETENTION)
    )
    ctx.session.add(ThrottleEvent(key=_key(key), created_at=now))


async def prune(ctx: Ctx, older_than: timedelta = RETENTION) -> int:
    """Delete events older than any window; returns how many went."""
    result = await ctx.session.execute(delete(ThrottleEvent).where(ThrottleEvent.created_at < utcnow() - older_than))
    return int(getattr(result, "rowcount", 0) or 0)
