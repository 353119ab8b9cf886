"""`Idempotency-Key` on creating and rotating POSTs (contracts/management-api.md §1.5).

Scoped to (caller, method, path), kept 24 h. The first request claims the key (`in_progress`, committed before the
work starts); its final 2xx/4xx answer is kept and replayed for the same JSON body (`Idempotent-Replayed: true`);
another body → 422; a retry while the first still runs → 409. A 5xx releases the key, so a retry runs again. An
answer that carried a one-time secret is not kept: a retry gets 409 with the resource's `Location` and a detail
that says how to get a new secret.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from keystile.domain.errors import ConflictError, IdempotencyMismatchError, ValidationError
from keystile.services.context import Runtime
from keystile.store.models import IdempotencyKey

__all__ = ["IN_PROGRESS", "KEEP", "Claim", "Replay", "begin", "finish", "purge_expired", "release", "secret_detail"]

KEEP = timedelta(hours=24)
IN_PROGRESS = "a request with this Idempotency-Key is in progress"
_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Replay:
    """The kept answer of the first request."""

    status: int
    body: dict[str, Any] | None
    location: str | None


@dataclass(frozen=True)
class Claim:
    """This request owns the key until `finish` or `release`."""

    row_id: uuid.UUID


def secret_detail(kind: str, resource_id: str, remedy: str) -> str:
    """The 409 detail for a replay of a secret-bearing answer (§1.5)."""
    return (
        f"This request already succeeded ({kind} {resource_id}). Its secret was shown once in that response and "
        f"keystile does not keep it; {remedy}."
    )


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= 255 or any(not 0x21 <= ord(c) <= 0x7E for c in key):
        raise ValidationError.single(
            _HEADER, "invalid", "Idempotency-Key must be 1–255 visible ASCII characters", source="header"
        )


def body_hash(body: Any) -> str:
    """SHA-256 of the body as canonical JSON: the same JSON value, however formatted, is the same request."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def begin(runtime: Runtime, *, scope: str, method: str, path: str, key: str, body: Any) -> Replay | Claim:
    """Claim `key` for this request, or answer from the first one.

    Raises:
        ValidationError: a malformed key.
        IdempotencyMismatchError: the key was used with another body (422).
        ConflictError: the first request still runs, or its answer held a secret (409, with `Location`).
    """
    _check_key(key)
    digest = body_hash(body)
    now = datetime.now(UTC)
    where = (
        IdempotencyKey.scope == scope,
        IdempotencyKey.method == method,
        IdempotencyKey.path == path,
        IdempotencyKey.key == key,
    )
    async with runtime.sessions() as session:
        await session.execute(delete(IdempotencyKey).where(*where, IdempotencyKey.created_at < now - KEEP))
        row = (await session.execute(select(IdempotencyKey).where(*where))).scalar_one_or_none()
        if row is None:
            row = IdempotencyKey(
                id=uuid.uuid4(),
                scope=scope,
                method=method,
                path=path[:512],
                key=key,
                request_sha256=digest,
                state="in_progress",
                created_at=now,
            )
            session.add(row)
            try:
                await session.commit()
            except IntegrityError as exc:  # another request claimed it between our read and insert
                raise ConflictError(IN_PROGRESS) from exc
            return Claim(row.id)
        await session.commit()
    if row.request_sha256 != digest:
        raise IdempotencyMismatchError("this Idempotency-Key was already used with a different request body")
    if row.state == "in_progress":
        raise ConflictError(IN_PROGRESS)
    if row.state == "secret":
        raise ConflictError(row.secret_resource or IN_PROGRESS, location=row.response_location)
    return Replay(int(row.response_status or 200), row.response_body, row.response_location)


async def finish(
    runtime: Runtime,
    claim: Claim,
    *,
    status: int,
    body: dict[str, Any] | None,
    location: str | None = None,
    secret: str | None = None,
) -> None:
    """Keep the final answer (2xx/4xx); `secret` (the 409 detail) instead of a secret-bearing body; 5xx releases."""
    if status >= 500:
        await release(runtime, claim)
        return
    async with runtime.sessions() as session:
        row = await session.get(IdempotencyKey, claim.row_id)
        if row is None:
            return
        row.response_status = status
        row.response_location = location[:512] if location else None
        if secret is not None:
            row.state = "secret"
            row.secret_resource = secret[:512]
            row.response_body = None
        else:
            row.state = "done"
            row.response_body = body
        await session.commit()


async def release(runtime: Runtime, claim: Claim) -> None:
    """Forget the claim (the request ended in a 5xx or an unexpected error): a retry runs again."""
    async with runtime.sessions() as session:
        await session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == claim.row_id))
        await session.commit()


async def purge_expired(runtime: Runtime) -> int:
    """Drop keys older than 24 h (the runner calls this now and then); how many went."""
    async with runtime.sessions() as session:
        result = await session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.created_at < datetime.now(UTC) - KEEP)
        )
        await session.commit()
        return int(getattr(result, "rowcount", 0) or 0)
