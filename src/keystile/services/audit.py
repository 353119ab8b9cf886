"""Audit events (management-api.md §6): written in the same transaction as the change they record;
refused attempts in a transaction of their own. Secrets appear only as `[redacted]`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Container
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from keystile.domain.errors import NotFoundError
from keystile.domain.listing import ListQuery, ListSpec, Page
from keystile.domain.time import rfc3339
from keystile.services.context import Actor, Ctx, Runtime
from keystile.store.listing import paginate
from keystile.store.models import AuditEvent
from keystile.store.types import utcnow

__all__ = [
    "LIST_SPEC",
    "REDACTED",
    "diff",
    "get",
    "list_events",
    "purge_expired",
    "record",
    "record_failure",
]

REDACTED = "[redacted]"
log = logging.getLogger(__name__)

LIST_SPEC = ListSpec(
    filters={
        "actor_type": "string",
        "actor_id": "string",
        "action": "string",
        "resource_type": "string",
        "resource_id": "string",
        "outcome": "string",
        "created_at": "datetime",
    },
    sorts=("created_at", "action", "resource_type"),
    default_sort=("created_at", True),
)


def diff(before: dict[str, Any], after: dict[str, Any], secret_keys: Container[str] = ()) -> dict[str, Any]:
    """{dotted field: {from, to}} for what changed; secret fields as `[redacted]` on both sides."""
    secrets = secret_keys
    out: dict[str, Any] = {}

    def walk(prefix: str, a: Any, b: Any) -> None:
        nested = prefix.split(".")[0] in ("dcr_config", "configs")
        if nested and (isinstance(a, dict) or isinstance(b, dict)):
            a_map = a if isinstance(a, dict) else {}
            b_map = b if isinstance(b, dict) else {}
            for key in sorted(set(a_map) | set(b_map)):
                walk(f"{prefix}.{key}", a_map.get(key), b_map.get(key))
            return
        if a == b:
            return
        leaf = prefix.rsplit(".", 1)[-1]
        if leaf in secrets or prefix in secrets:
            out[prefix] = {"from": REDACTED if a is not None else None, "to": REDACTED if b is not None else None}
        else:
            out[prefix] = {"from": a, "to": b}

    for key in sorted(set(before) | set(after)):
        walk(key, before.get(key), after.get(key))
    return out


def _event(
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: object,
    outcome: str,
    status_code: int | None,
    trace_id: str | None,
    client_ip: str | None,
    changes: dict[str, Any] | None,
) -> AuditEvent:
    return AuditEvent(
        actor_type=actor.type,
        actor_id=actor.id,
        actor_name=actor.name,
        action=action,
        resource_type=resource_type,
        resource_id=str(resource_id) if resource_id is not None else None,
        outcome=outcome,
        status_code=status_code,
        trace_id=trace_id,
        client_ip=client_ip,
        changes=changes or {},
    )


def record(
    ctx: Ctx,
    action: str,
    resource_type: str,
    resource_id: object,
    *,
    changes: dict[str, Any] | None = None,
    status_code: int = 200,
) -> None:
    """Add a success event to the caller's transaction."""
    ctx.session.add(
        _event(
            ctx.actor, action, resource_type, resource_id, "success", status_code, ctx.trace_id, ctx.client_ip, changes
        )
    )


async def record_failure(
    runtime: Runtime,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: object,
    *,
    status_code: int,
    trace_id: str | None,
    client_ip: str | None,
    changes: dict[str, Any] | None = None,
) -> None:
    """A refused attempt, in a transaction of its own (the change itself was rolled back)."""
    async with runtime.sessions() as session:
        session.add(
            _event(actor, action, resource_type, resource_id, "failure", status_code, trace_id, client_ip, changes)
        )
        await session.commit()


def view(row: AuditEvent) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "created_at": rfc3339(row.created_at),
        "actor": {"type": row.actor_type, "id": row.actor_id, "name": row.actor_name},
        "action": row.action,
        "resource": {"type": row.resource_type, "id": row.resource_id},
        "outcome": row.outcome,
        "status_code": row.status_code,
        "trace_id": row.trace_id,
        "client_ip": row.client_ip,
        "changes": row.changes,
    }


async def list_events(ctx: Ctx, query: ListQuery) -> Page:
    cols: dict[str, Any] = {
        "actor_type": AuditEvent.actor_type,
        "actor_id": AuditEvent.actor_id,
        "action": AuditEvent.action,
        "resource_type": AuditEvent.resource_type,
        "resource_id": AuditEvent.resource_id,
        "outcome": AuditEvent.outcome,
        "created_at": AuditEvent.created_at,
    }
    rows, total = await paginate(ctx.session, select(AuditEvent), query, cols, AuditEvent.id)
    return Page([view(r[0]) for r in rows], query.page_number, query.page_size, total)


async def get(ctx: Ctx, event_id: uuid.UUID) -> dict[str, Any]:
    row = await ctx.session.get(AuditEvent, event_id)
    if row is None:
        raise NotFoundError()
    return view(row)


async def purge_expired(runtime: Runtime, *, now: datetime | None = None) -> int:
    """Delete events older than `KEYSTILE_AUDIT_RETENTION_DAYS`; how many went."""
    cutoff = (now or utcnow()) - timedelta(days=runtime.settings.audit_retention_days)
    async with runtime.sessions() as session:
        result = await session.execute(delete(AuditEvent).where(AuditEvent.created_at < cutoff))
        await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
