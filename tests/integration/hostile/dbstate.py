"""Every row of every table (audit events, login-throttle counters and last-use stamps aside), to prove a refused
request changed nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from keystile.services.context import Runtime
from keystile.store.models import Base

# A refused request may be audited (a failure event) and counted against login throttling; nothing else moves.
IGNORED = {"audit_events", "throttle_events"}
# ...and an authenticated request stamps its token's last use.
IGNORED_COLUMNS = {"last_used_at"}


async def db_state(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with runtime.sessions() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in IGNORED:
                continue
            columns = [c for c in table.columns if c.name not in IGNORED_COLUMNS]
            rows = (await session.execute(select(*columns))).all()
            out[table.name] = sorted((tuple(map(repr, row)) for row in rows), key=repr)
    return out
