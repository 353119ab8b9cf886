"""Admin personal access tokens (`kpat_…`): created by the CLI, printed once, stored as SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from keystile.domain.errors import AuthenticationError, ValidationError
from keystile.services.context import Actor, Runtime
from keystile.store.models import AdminToken
from keystile.store.types import utcnow

__all__ = ["PREFIX", "authenticate", "authenticate_in", "count", "create", "sha256_hex"]

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
    """The admin a token belongs to, in a session of its own (see `authenticate_in`)."""
    async with runtime.sessions() as session:
        return await authenticate_in(session, token)


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
