"""DCR providers (management-api.md §2): create, list, get, update, delete, verify."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from keystile.domain.errors import ConflictError, InvalidParameter, NotFoundError
from keystile.domain.listing import ListQuery, ListSpec, Page
from keystile.domain.providers import (
    PROVIDER_TYPES,
    SECRET_FIELDS,
    DcrProviderCreate,
    DcrProviderUpdate,
    public_config,
    validate_dcr_config,
)
from keystile.domain.time import rfc3339
from keystile.domain.urls import split_issuer
from keystile.domain.validation import parse
from keystile.services import audit, usage
from keystile.services.context import Ctx
from keystile.store.errors import commit_or_conflict
from keystile.store.listing import paginate
from keystile.store.models import AuthStrategy, DcrProvider

__all__ = ["LIST_SPEC", "create", "decrypted_secrets", "delete", "get", "get_row", "list_providers", "update"]

TABLE = "dcr_providers"

LIST_SPEC = ListSpec(
    filters={
        "id": "uuid",
        "name": "string",
        "issuer": "string",
        "provider_type": "string",
        "initial_client_id": "string",
        "initial_client_audience": "string",
    },
    sorts=("created_at", "updated_at", "provider_type", "issuer", "name"),
)


def view(row: DcrProvider, active: bool) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "display_name": row.display_name,
        "provider_type": row.provider_type,
        "issuer": row.discovery_url or row.issuer,
        "active": active,
        "dcr_config": public_config(row.provider_type, row.dcr_config),
        "labels": row.labels,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }


def summary(row: DcrProvider) -> dict[str, Any]:
    return {"id": str(row.id), "name": row.name, "display_name": row.display_name, "provider_type": row.provider_type}


def _split(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    plain = {k: v for k, v in config.items() if k not in SECRET_FIELDS}
    secret = {k: v for k, v in config.items() if k in SECRET_FIELDS and v is not None}
    return plain, secret


def _encrypt(ctx: Ctx, row_id: uuid.UUID, secrets: dict[str, str]) -> dict[str, str]:
    return {k: ctx.vault.encrypt(v, table=TABLE, row_id=row_id, field=k) for k, v in secrets.items()}


def decrypted_secrets(ctx: Ctx, row: DcrProvider) -> dict[str, str]:
    """The provider's write-only secrets in clear, for an adapter call only."""
    return {k: ctx.vault.decrypt(v, table=TABLE, row_id=row.id, field=k) for k, v in row.secrets.items()}


async def _name_taken(ctx: Ctx, name: str, exclude: uuid.UUID | None = None) -> bool:
    stmt = select(func.count()).select_from(DcrProvider).where(DcrProvider.name == name)
    if exclude is not None:
        stmt = stmt.where(DcrProvider.id != exclude)
    return bool((await ctx.session.execute(stmt)).scalar_one())


async def create(ctx: Ctx, raw: Any) -> dict[str, Any]:
    """Create a provider. Raises ValidationError (every problem), ConflictError (name taken)."""
    extra: list[InvalidParameter] = []
    if isinstance(raw, dict):
        ptype, cfg = raw.get("provider_type"), raw.get("dcr_config")
        if isinstance(ptype, str) and isinstance(cfg, dict) and ptype in PROVIDER_TYPES:
            extra = validate_dcr_config(ptype, cfg, set())
    body = parse(DcrProviderCreate, raw, extra_items=extra)
    if await _name_taken(ctx, body.name):
        raise ConflictError(f"a DCR provider named {body.name!r} already exists")
    issuer, discovery = split_issuer(body.issuer)
    plain, secret = _split(body.dcr_config)
    row = DcrProvider(
        id=uuid.uuid4(),
        name=body.name,
        display_name=body.display_name or body.name,
        provider_type=body.provider_type,
        issuer=issuer,
        discovery_url=discovery,
        dcr_config=plain,
        labels=body.labels or {},
    )
    row.secrets = _encrypt(ctx, row.id, secret)
    ctx.session.add(row)
    changes = audit.diff(
        {},
        {"name": row.name, "provider_type": row.provider_type, "issuer": body.issuer, "dcr_config": body.dcr_config},
        SECRET_FIELDS,
    )
    audit.record(ctx, "dcr_provider.create", "dcr_provider", row.id, changes=changes, status_code=201)
    async with commit_or_conflict(ctx.session, f"a DCR provider named {body.name!r} already exists"):
        await ctx.session.commit()
    return view(row, False)


async def get_row(ctx: Ctx, provider_id: uuid.UUID) -> DcrProvider:
    row = await ctx.session.get(DcrProvider, provider_id)
    if row is None:
        raise NotFoundError()
    return row


async def get(ctx: Ctx, provider_id: uuid.UUID) -> dict[str, Any]:
    row = await get_row(ctx, provider_id)
    return view(row, row.id in await usage.active_provider_ids(ctx))


_JSON_FILTERS = ("initial_client_id", "initial_client_audience")


async def list_providers(ctx: Ctx, query: ListQuery) -> Page:
    cols: dict[str, Any] = {
        "id": DcrProvider.id,
        "name": DcrProvider.name,
        "issuer": DcrProvider.issuer,
        "provider_type": DcrProvider.provider_type,
        "created_at": DcrProvider.created_at,
        "updated_at": DcrProvider.updated_at,
    }
    for key in _JSON_FILTERS:
        cols[key] = DcrProvider.dcr_config[key].as_string()
    rows, total = await paginate(ctx.session, select(DcrProvider), query, cols, DcrProvider.id)
    active = await usage.active_provider_ids(ctx)
    return Page([view(r[0], r[0].id in active) for r in rows], query.page_number, query.page_size, total)


async def update(ctx: Ctx, provider_id: uuid.UUID, raw: Any) -> dict[str, Any]:
    """PATCH: only the fields sent; dcr_config merged key by key; a secret sent replaces the stored one."""
    row = await get_row(ctx, provider_id)
    extra: list[InvalidParameter] = []
    if isinstance(raw, dict) and "provider_type" in raw:
        raw = {k: v for k, v in raw.items() if k != "provider_type"}
        extra.append(
            InvalidParameter("provider_type", "unknown_property", "provider_type cannot change; create a new provider")
        )
    merged_cfg: dict[str, Any] | None = None
    if isinstance(raw, dict) and isinstance(raw.get("dcr_config"), dict):
        patch = raw["dcr_config"]
        merged_cfg = {**row.dcr_config, **dict(patch.items())}
        present = {k for k in row.secrets if k not in patch or patch[k] is not None}
        extra.extend(validate_dcr_config(row.provider_type, merged_cfg, present))
    body = parse(DcrProviderUpdate, raw, extra_items=extra)
    sent = body.model_fields_set
    before = {
        "name": row.name,
        "display_name": row.display_name,
        "issuer": row.discovery_url or row.issuer,
        "labels": dict(row.labels),
        "dcr_config": {**row.dcr_config, **dict.fromkeys(row.secrets, "x")},
    }
    if "name" in sent and body.name is not None and body.name != row.name:
        if await _name_taken(ctx, body.name, exclude=row.id):
            raise ConflictError(f"a DCR provider named {body.name!r} already exists")
        row.name = body.name
    if "display_name" in sent and body.display_name is not None:
        row.display_name = body.display_name
    if "issuer" in sent and body.issuer is not None:
        row.issuer, row.discovery_url = split_issuer(body.issuer)
    if "labels" in sent and body.labels is not None:
        labels = dict(row.labels)
        for key, value in body.labels.items():
            if value is None:
                labels.pop(key, None)
            else:
                labels[key] = value
        row.labels = labels
    if merged_cfg is not None:
        plain, secret = _split(merged_cfg)
        row.dcr_config = {k: v for k, v in plain.items() if v is not None}
        secrets = {k: v for k, v in row.secrets.items() if k not in (body.dcr_config or {})}
        secrets.update(_encrypt(ctx, row.id, secret))
        row.secrets = secrets
    after = {
        "name": row.name,
        "display_name": row.display_name,
        "issuer": row.discovery_url or row.issuer,
        "labels": dict(row.labels),
        "dcr_config": {**row.dcr_config, **dict.fromkeys(row.secrets, "x")},
    }
    changes = audit.diff(before, after, SECRET_FIELDS)
    for key in body.dcr_config or {}:
        if key in SECRET_FIELDS:
            changes[f"dcr_config.{key}"] = {"from": audit.REDACTED, "to": audit.REDACTED}
    audit.record(ctx, "dcr_provider.update", "dcr_provider", row.id, changes=changes)
    async with commit_or_conflict(ctx.session, f"a DCR provider named {row.name!r} already exists"):
        await ctx.session.commit()
    return view(row, row.id in await usage.active_provider_ids(ctx))


async def delete(ctx: Ctx, provider_id: uuid.UUID) -> None:
    """Delete a provider. Raises ConflictError while a strategy uses it (detail names them)."""
    row = await get_row(ctx, provider_id)
    users = (
        await ctx.session.execute(
            select(AuthStrategy.id, AuthStrategy.name).where(AuthStrategy.dcr_provider_id == row.id).limit(3)
        )
    ).all()
    if users:
        names = ", ".join(f"{u.name!r} ({u.id})" for u in users)
        raise ConflictError(f"DCR provider {row.name!r} is used by auth strategy {names}")
    await ctx.session.delete(row)
    audit.record(ctx, "dcr_provider.delete", "dcr_provider", row.id, status_code=204)
    await ctx.session.commit()
