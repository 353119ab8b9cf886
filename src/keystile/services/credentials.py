"""Application credentials (contracts/portal-api.md §5): API keys of key_auth applications, and the client
secrets of DCR applications whose provider holds two live secrets (Okta, Entra) for rotation without downtime."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from keystile.domain.applications import (
    API_KEY_PREFIX,
    MAX_API_KEYS,
    CredentialCreate,
    CredentialUpdate,
    credential_type,
    too_many,
)
from keystile.domain.errors import ConflictError, NotFoundError, PermissionDeniedError
from keystile.domain.listing import ListQuery, Page
from keystile.domain.time import rfc3339
from keystile.domain.validation import parse
from keystile.services import applications, audit, installation
from keystile.services.context import Ctx
from keystile.store.models import Application, AuthStrategy, Credential, DcrProvider

__all__ = [
    "LAST_SECRET",
    "SINGLE_SECRET",
    "create",
    "delete",
    "hash_key",
    "list_credentials",
    "new_api_key",
    "rename",
]

SINGLE_SECRET = "this application's provider holds a single secret; use refresh-token"
LAST_SECRET = "an application keeps at least one secret; use refresh-token to replace it"
_TTL_UNITS = {"days": 1, "weeks": 7, "years": 365}


def new_api_key() -> str:
    """`kak_` + 43 URL-safe characters (256 bits)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _key_status(cred: Credential, now: datetime) -> str:
    if cred.revoked_at is not None or cred.status == "revoked":
        return "revoked"
    if cred.expires_at is not None and cred.expires_at <= now:
        return "expired"
    return "active"


def _key_view(cred: Credential, now: datetime) -> dict[str, Any]:
    return {
        "type": "api_key",
        "id": str(cred.id),
        "display_name": cred.display_name,
        "status": _key_status(cred, now),
        "expires_at": rfc3339(cred.expires_at),
        "created_at": rfc3339(cred.created_at),
    }


def _secret_view(cred: Credential) -> dict[str, Any]:
    return {
        "type": "client_secret",
        "id": cred.idp_credential_id or str(cred.id),
        "display_name": cred.display_name,
        "client_id": cred.client_id,
        "created_at": rfc3339(cred.created_at),
        "expires_at": rfc3339(cred.expires_at),
    }


async def _context(ctx: Ctx, app_id: uuid.UUID) -> tuple[Application, AuthStrategy, DcrProvider | None, str]:
    """The developer's application and what kind of credentials it holds; 409 where it holds none of these."""
    _, app = await applications.load_own(ctx, app_id)
    strategy = await ctx.session.get(AuthStrategy, app.auth_strategy_id)
    assert strategy is not None
    provider = await ctx.session.get(DcrProvider, app.dcr_provider_id) if app.dcr_provider_id else None
    ctype = credential_type(strategy.strategy_type, strategy.dcr_provider_id)
    if ctype == "key_auth":
        return app, strategy, provider, "api_key"
    if ctype == "client_credentials" and applications.max_secrets(provider) > 1:
        return app, strategy, provider, "client_secret"
    raise ConflictError(SINGLE_SECRET)


async def list_credentials(ctx: Ctx, app_id: uuid.UUID, query: ListQuery) -> Page:
    app, _, _, kind = await _context(ctx, app_id)
    stmt = select(Credential).where(Credential.application_id == app.id, Credential.type == kind)
    if kind == "client_secret":
        stmt = stmt.where(Credential.revoked_at.is_(None))
    total = (await ctx.session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    rows = await ctx.session.execute(
        stmt.order_by(Credential.created_at, Credential.id)
        .limit(query.page_size)
        .offset((query.page_number - 1) * query.page_size)
    )
    now = _now()
    data = [_key_view(c, now) if kind == "api_key" else _secret_view(c) for c in rows.scalars()]
    return Page(data, query.page_number, query.page_size, int(total))


def _expiry(strategy: AuthStrategy, now: datetime) -> datetime | None:
    ttl = strategy.configs.get("ttl")
    if not isinstance(ttl, dict) or not isinstance(ttl.get("value"), int):
        return None
    return now + timedelta(days=ttl["value"] * _TTL_UNITS.get(str(ttl.get("unit")), 1))


async def _live(ctx: Ctx, app: Application, kind: str) -> int:
    count = await ctx.session.execute(
        select(func.count(Credential.id)).where(
            Credential.application_id == app.id, Credential.type == kind, Credential.revoked_at.is_(None)
        )
    )
    return int(count.scalar_one())


async def create(ctx: Ctx, app_id: uuid.UUID, raw: Any) -> dict[str, Any]:
    """A new API key, or a second client secret at the IdP; the secret is in this answer only.

    Raises:
        ValidationError, NotFoundError, ConflictError (single-secret provider), PermissionDeniedError (limit),
        ProviderError (the IdP refused a new secret).
    """
    app, strategy, provider, kind = await _context(ctx, app_id)
    body = parse(CredentialCreate, raw if raw is not None else {})
    now = _now()
    if kind == "api_key":
        if await _live(ctx, app, "api_key") >= MAX_API_KEYS:
            raise PermissionDeniedError(too_many("Credentials", MAX_API_KEYS))
        key = new_api_key()
        cred = Credential(
            id=uuid.uuid4(),
            application_id=app.id,
            type="api_key",
            display_name=body.display_name,
            key_sha256=hash_key(key),
            status="active",
            expires_at=_expiry(strategy, now),
            created_at=now,
        )
        ctx.session.add(cred)
        audit.record(ctx, "credential.create", "credential", cred.id, status_code=201)
        await installation.bump_config_version(ctx)
        await ctx.session.commit()
        return {**_key_view(cred, now), "credential": key}
    limit = applications.max_secrets(provider)
    if await _live(ctx, app, "client_secret") >= limit:
        raise PermissionDeniedError(too_many("Credentials", limit))
    assert provider is not None
    from keystile.services.verification import adapter_for

    adapter = adapter_for(ctx, provider)
    ref = applications.client_ref(ctx, app)
    await ctx.before_idp_call()
    added = await adapter.rotate_secret(ref, "add")
    applications.store_client_update(ctx, app, added.handles, added.secret_handles, added.metadata)
    cred = Credential(
        id=uuid.uuid4(),
        application_id=app.id,
        type="client_secret",
        display_name=body.display_name,
        idp_credential_id=added.credential_id,
        client_id=app.reference_id,
        status="pending" if added.needs_probe else "active",
        expires_at=added.expires_at,
        created_at=now,
    )
    ctx.session.add(cred)
    audit.record(ctx, "credential.create", "credential", cred.id, status_code=201)
    await ctx.session.commit()
    return {**_secret_view(cred), "client_secret": added.client_secret.get_secret_value()}


async def _find(ctx: Ctx, app: Application, kind: str, credential_id: str) -> Credential:
    stmt = select(Credential).where(Credential.application_id == app.id, Credential.type == kind)
    try:
        row_id = uuid.UUID(credential_id)
    except ValueError:
        row_id = None
    if kind == "client_secret":
        cond = Credential.idp_credential_id == credential_id
        stmt = stmt.where(cond | (Credential.id == row_id) if row_id else cond)
        stmt = stmt.where(Credential.revoked_at.is_(None))
    elif row_id is None:
        raise NotFoundError()
    else:
        stmt = stmt.where(Credential.id == row_id)
    cred = (await ctx.session.execute(stmt.limit(1))).scalar_one_or_none()
    if cred is None:
        raise NotFoundError()
    return cred


async def rename(ctx: Ctx, app_id: uuid.UUID, credential_id: str, raw: Any) -> None:
    """PUT `{display_name}` (200, no body)."""
    app, _, _, kind = await _context(ctx, app_id)
    body = parse(CredentialUpdate, raw)
    cred = await _find(ctx, app, kind, credential_id)
    before = cred.display_name
    cred.display_name = body.display_name
    audit.record(
        ctx,
        "credential.update",
        "credential",
        cred.id,
        changes={"display_name": {"from": before, "to": body.display_name}},
    )
    await ctx.session.commit()


async def delete(ctx: Ctx, app_id: uuid.UUID, credential_id: str) -> None:
    """Revoke a key (it stays listed as `revoked`), or a client secret at the IdP (never the last one).

    Raises:
        NotFoundError, ConflictError (last secret, single-secret provider), ProviderError (the IdP failed).
    """
    app, _, provider, kind = await _context(ctx, app_id)
    cred = await _find(ctx, app, kind, credential_id)
    now = _now()
    if kind == "api_key":
        if cred.revoked_at is None:
            cred.status = "revoked"
            cred.revoked_at = now
            await installation.bump_config_version(ctx)
        audit.record(ctx, "credential.delete", "credential", cred.id, status_code=204)
        await ctx.session.commit()
        return
    if await _live(ctx, app, "client_secret") <= 1:
        raise ConflictError(LAST_SECRET)
    assert provider is not None
    from keystile.services.verification import adapter_for

    if not cred.idp_credential_id:
        raise ConflictError(
            "the identity provider gave no id for this secret, so it cannot be revoked alone; "
            + LAST_SECRET.split("; ")[1]
        )
    await adapter_for(ctx, provider).revoke_secret(applications.client_ref(ctx, app), cred.idp_credential_id)
    cred.status = "revoked"
    cred.revoked_at = now
    app.credentials_not_before = now
    audit.record(ctx, "credential.delete", "credential", cred.id, status_code=204)
    await installation.bump_config_version(ctx)
    await ctx.session.commit()
