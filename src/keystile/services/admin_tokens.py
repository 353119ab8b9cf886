"""Admin personal access tokens (`kpat_…`): created by the CLI, printed once, stored as SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keystile.domain.errors import AuthenticationError, NotFoundError, ValidationError
from keystile.domain.time import rfc3339
from keystile.services.context import Actor, Runtime
from keystile.store.models import AdminToken, AuditEvent
from keystile.store.types import utcnow

__all__ = ["PREFIX", "authenticate", "authenticate_in", "count", "create", "list_tokens", "revoke", "sha256_hex"]

PREFIX = "kpat_"


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def looks_like_admin_token(value: str) -> bool:
    return value.startswith(PREFIX) and len(value) >= len(PREFIX) + 40


async def create(runtime: Runtime, name: str) -> tuple[str, str]:
    """A new token: returns (id, token). The token is shown once and never stored."""
    name = name.strip()
    if not 1 <= len(name) <= 255:
        raise ValidationError.single("name", "min_length", "the token name must be 1–255 characters", minimum=1)
    token = PREFIX + secrets.token_urlsafe(32)
    async with runtime.sessions() as session:
        row = AdminToken(name=name, token_sha256=sha256_hex(token))
        session.add(row)
        await session.commit()
        return str(row.id), token


async def count(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(AdminToken))).scalar_one())


async def authenticate(runtime: Runtime, token: str) -> Actor:
    """The admin a token belongs to, looked up in a read-only session; its last use (at most once a minute) is
    written in a short session of its own, so readers never become writers.

    Raises:
        AuthenticationError: unknown or revoked token.
    """
    if not looks_like_admin_token(token):
        raise AuthenticationError()
    digest = sha256_hex(token)
    async with (runtime.read_sessions or runtime.sessions)() as session:
        row = (await session.execute(select(AdminToken).where(AdminToken.token_sha256 == digest))).scalar_one_or_none()
        if row is None or not hmac.compare_digest(row.token_sha256, digest) or row.revoked_at is not None:
            raise AuthenticationError()
        actor = Actor("admin_token", str(row.id), row.name)
        stale = row.last_used_at is None or utcnow() - row.last_used_at > timedelta(minutes=1)
    if stale:
        async with runtime.sessions() as session:
            await session.execute(update(AdminToken).where(AdminToken.id == row.id).values(last_used_at=utcnow()))
            await session.commit()
    return actor


async def authenticate_in(session: AsyncSession, token: str) -> Actor:
    """The admin a token belongs to, looked up in the caller's session (its last use is recorded at most once
    a minute, committed there).

    Raises:
        AuthenticationError: unknown or revoked token.
    """
    if not looks_like_admin_token(token):
        raise AuthenticationError()
    digest = sha256_hex(token)
    row = (await session.execute(select(AdminToken).where(AdminToken.token_sha256 == digest))).scalar_one_or_none()
    # the lookup is by hash; compare again in constant time so timing says nothing about near misses
    if row is None or not hmac.compare_digest(row.token_sha256, digest) or row.revoked_at is not None:
        raise AuthenticationError()
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
        await session.commit()
    return Actor("admin_token", str(row.id), row.name)


async def list_tokens(runtime: Runtime) -> list[dict[str, str | None]]:
    """Every token's id, name and dates (never the token)."""
    async with runtime.sessions() as session:
        rows = (await session.execute(select(AdminToken).order_by(AdminToken.created_at, AdminToken.id))).scalars()
        return [
            {
                "id": str(r.id),
                "name": r.name,
                "created_at": rfc3339(r.created_at),
                "last_used_at": rfc3339(r.last_used_at),
                "revoked_at": rfc3339(r.revoked_at),
            }
            for r in rows
        ]


async def revoke(runtime: Runtime, token_id: uuid.UUID) -> None:
    """Revoke a token: every API call and admin page session made with it is refused from now on.

    Raises:
        NotFoundError: no token has that id.
    """
    async with runtime.sessions() as session:
        row = await session.get(AdminToken, token_id)
        if row is None:
            raise NotFoundError(f"no admin token has the id {token_id}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.add(
                AuditEvent(
                    actor_type="system",
                    actor_name="keystile admin token revoke",
                    action="admin_token.revoke",
                    resource_type="admin_token",
                    resource_id=str(row.id),
                    outcome="success",
                    status_code=204,
                )
            )
            await session.commit()
