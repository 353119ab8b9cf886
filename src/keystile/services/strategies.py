"""Application auth strategies (management-api.md §3): create, list, get, replace, update, delete."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from keystile.domain.errors import ConflictError, InvalidParameter, NotFoundError, ValidationError
from keystile.domain.listing import ListQuery, ListSpec, Page
from keystile.domain.strategies import (
    CONFIG_KEYS,
    AuthStrategyCreate,
    AuthStrategyUpdate,
    is_secret_key,
    normalise_strategy_type,
    strategy_type_problem,
    validate_configs,
)
from keystile.domain.time import rfc3339
from keystile.domain.urls import split_issuer
from keystile.domain.validation import parse
from keystile.services import audit, installation, usage
from keystile.services.context import Ctx
from keystile.services.providers import summary as provider_summary
from keystile.store.listing import paginate
from keystile.store.models import AuthStrategy, DcrProvider

__all__ = ["LIST_SPEC", "create", "delete", "get", "get_row", "list_strategies", "replace", "update"]

TABLE = "auth_strategies"
MULTI_SECRET_PROVIDERS = frozenset({"okta", "azureAd"})

LIST_SPEC = ListSpec(
    filters={
        "strategy_type": "string",
        "name": "string",
        "display_name": "string",
        "dcr_provider_name": "string",
        "dcr_provider_type": "string",
        "dcr_provider_id": "uuid",
    },
    sorts=(
        "created_at",
        "updated_at",
        "strategy_type",
        "name",
        "display_name",
        "dcr_provider_id",
        "dcr_provider_name",
        "dcr_provider_type",
    ),
)


def _config_key(row: AuthStrategy) -> str:
    return CONFIG_KEYS[row.strategy_type]


def view(row: AuthStrategy, provider: DcrProvider | None, active: bool) -> dict[str, Any]:
    key = _config_key(row)
    if row.strategy_type == "key_auth":
        multiple = True
    else:
        multiple = provider is not None and provider.provider_type in MULTI_SECRET_PROVIDERS
    return {
        "id": str(row.id),
        "name": row.name,
        "display_name": row.display_name,
        "strategy_type": row.strategy_type,
        "active": active,
        "configs": {key: dict(row.configs)},
        "dcr_provider": provider_summary(provider) if provider is not None else None,
        "labels": row.labels,
        "supports_multiple_credentials": multiple,
        "principals": row.principals or {"enabled": False},
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }


def _normalise_config(strategy_type: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(stored plain config, write-only secrets) with defaults applied."""
    plain: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for key, value in body.items():
        if is_secret_key(key) and value is not None:
            secrets[key] = str(value)
        elif value is not None or key == "ttl":
            plain[key] = value
    if strategy_type == "openid_connect":
        issuer, discovery = split_issuer(plain["issuer"])
        plain["issuer"] = discovery or issuer
        if not plain.get("scopes"):
            plain["scopes"] = ["openid"]
        if "audience_required" in plain and "audience" not in plain:
            plain["audience"] = plain.pop("audience_required")
    else:
        plain.setdefault("key_names", ["apikey"])
        if plain.get("ttl") is None:
            plain.pop("ttl", None)
    return plain, secrets


async def _provider_problem(ctx: Ctx, raw_id: Any) -> tuple[DcrProvider | None, list[InvalidParameter]]:
    if raw_id is None:
        return None, []
    try:
        pid = uuid.UUID(str(raw_id)) if isinstance(raw_id, str) else None
    except ValueError:
        return None, []
    if pid is None:
        return None, []
    provider = await ctx.session.get(DcrProvider, pid)
    if provider is None:
        return None, [
            InvalidParameter(
                "dcr_provider_id",
                "missing_reference",
                f"no DCR provider has the id {pid}; create it first or fix the id",
            )
        ]
    return provider, []


async def _check_create(ctx: Ctx, raw: Any) -> tuple[AuthStrategyCreate, DcrProvider | None]:
    extra: list[InvalidParameter] = []
    provider: DcrProvider | None = None
    if isinstance(raw, dict):
        raw = dict(raw)
        if "strategy_type" in raw:
            problem = strategy_type_problem(raw["strategy_type"])
            if problem is not None:
                extra.append(problem)
                raw.pop("strategy_type")
            else:
                raw["strategy_type"] = normalise_strategy_type(raw["strategy_type"])
                if isinstance(raw.get("configs"), dict):
                    extra.extend(validate_configs(raw["strategy_type"], raw["configs"]))
                    # validated above with its own rules; the model only checks that it is an object
                if raw["strategy_type"] == "key_auth" and raw.get("dcr_provider_id") is not None:
                    extra.append(
                        InvalidParameter("dcr_provider_id", "invalid", "a key_auth strategy has no DCR provider")
                    )
        provider, problems = await _provider_problem(ctx, raw.get("dcr_provider_id"))
        extra.extend(problems)
    if any(p.field == "strategy_type" for p in extra) and isinstance(raw, dict):
        raw["strategy_type"] = "openid_connect"  # placeholder so the model reports the other fields only
    body = parse(AuthStrategyCreate, raw, extra_items=extra)
    return body, provider


async def create(ctx: Ctx, raw: Any) -> dict[str, Any]:
    body, provider = await _check_create(ctx, raw)
    row = AuthStrategy(id=uuid.uuid4())
    _apply_full(ctx, row, body)
    ctx.session.add(row)
    audit.record(
        ctx,
        "auth_strategy.create",
        "auth_strategy",
        row.id,
        status_code=201,
        changes=audit.diff(
            {}, {"name": row.name, "strategy_type": row.strategy_type, "configs": body.configs}, _SECRET_MARK
        ),
    )
    await ctx.session.commit()
    return view(row, provider, False)


def _apply_full(ctx: Ctx, row: AuthStrategy, body: AuthStrategyCreate) -> None:
    plain, secrets = _normalise_config(body.strategy_type, body.configs[CONFIG_KEYS[body.strategy_type]])
    row.name = body.name
    row.display_name = body.display_name
    row.strategy_type = body.strategy_type
    row.configs = plain
    row.secrets = {k: ctx.vault.encrypt(v, table=TABLE, row_id=row.id, field=k) for k, v in secrets.items()}
    row.dcr_provider_id = body.dcr_provider_id
    row.labels = body.labels or {}
    row.principals = body.principals.model_dump() if body.principals else {"enabled": False}


async def get_row(ctx: Ctx, strategy_id: uuid.UUID) -> AuthStrategy:
    row = await ctx.session.get(AuthStrategy, strategy_id)
    if row is None:
        raise NotFoundError()
    return row


async def _provider(ctx: Ctx, row: AuthStrategy) -> DcrProvider | None:
    return await ctx.session.get(DcrProvider, row.dcr_provider_id) if row.dcr_provider_id else None


async def get(ctx: Ctx, strategy_id: uuid.UUID) -> dict[str, Any]:
    row = await get_row(ctx, strategy_id)
    return view(row, await _provider(ctx, row), row.id in await usage.active_strategy_ids(ctx))


async def list_strategies(ctx: Ctx, query: ListQuery) -> Page:
    cols: dict[str, Any] = {
        "strategy_type": AuthStrategy.strategy_type,
        "name": AuthStrategy.name,
        "display_name": AuthStrategy.display_name,
        "dcr_provider_id": AuthStrategy.dcr_provider_id,
        "dcr_provider_name": DcrProvider.name,
        "dcr_provider_type": DcrProvider.provider_type,
        "created_at": AuthStrategy.created_at,
        "updated_at": AuthStrategy.updated_at,
    }
    stmt = select(AuthStrategy, DcrProvider).outerjoin(DcrProvider, AuthStrategy.dcr_provider_id == DcrProvider.id)
    rows, total = await paginate(ctx.session, stmt, query, cols, AuthStrategy.id)
    active = await usage.active_strategy_ids(ctx)
    return Page([view(r[0], r[1], r[0].id in active) for r in rows], query.page_number, query.page_size, total)


async def _guard_provider_change(ctx: Ctx, row: AuthStrategy, new_provider: uuid.UUID | None) -> None:
    if new_provider != row.dcr_provider_id and await usage.strategy_application_count(ctx, row.id):
        raise ConflictError(
            f"auth strategy {row.name!r} has applications whose clients live at its current DCR provider; "
            "create a new strategy for the new provider"
        )


class _SecretKeys:
    """Membership test for audit.diff: any write-only strategy key."""

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and is_secret_key(key)


_SECRET_MARK = _SecretKeys()


def _snapshot(row: AuthStrategy) -> dict[str, Any]:
    return {
        "name": row.name,
        "display_name": row.display_name,
        "dcr_provider_id": str(row.dcr_provider_id) if row.dcr_provider_id else None,
        "labels": dict(row.labels),
        "configs": {**row.configs, **dict.fromkeys(row.secrets, "x")},
    }


async def replace(ctx: Ctx, strategy_id: uuid.UUID, raw: Any) -> dict[str, Any]:
    """PUT: full replace with the create schema (Konnect answers 201)."""
    row = await get_row(ctx, strategy_id)
    if isinstance(raw, dict) and "strategy_type" in raw:
        stype = normalise_strategy_type(raw["strategy_type"])
        if stype in CONFIG_KEYS and stype != row.strategy_type:
            raise ValidationError.single(
                "strategy_type", "invalid", f"strategy_type cannot change from {row.strategy_type} to {stype}"
            )
    body, provider = await _check_create(ctx, raw)
    await _guard_provider_change(ctx, row, body.dcr_provider_id)
    before = _snapshot(row)
    _apply_full(ctx, row, body)
    audit.record(
        ctx,
        "auth_strategy.replace",
        "auth_strategy",
        row.id,
        status_code=201,
        changes=audit.diff(before, _snapshot(row), _SECRET_MARK),
    )
    await installation.bump_config_version(ctx)  # issuer, scopes, key names… are in the snapshot
    await ctx.session.commit()
    return view(row, provider, row.id in await usage.active_strategy_ids(ctx))


async def update(ctx: Ctx, strategy_id: uuid.UUID, raw: Any) -> dict[str, Any]:
    """PATCH: named fields only; configs merged key by key."""
    row = await get_row(ctx, strategy_id)
    extra: list[InvalidParameter] = []
    merged: dict[str, Any] | None = None
    if isinstance(raw, dict):
        raw = dict(raw)
        if "strategy_type" in raw:
            raw.pop("strategy_type")
            extra.append(
                InvalidParameter(
                    "strategy_type", "unknown_property", "strategy_type cannot change; create a new strategy"
                )
            )
        cfgs = raw.get("configs")
        if isinstance(cfgs, dict):
            key = _config_key(row)
            inner = cfgs.get(key)
            if list(cfgs) != [key] or not isinstance(inner, dict):
                extra.append(InvalidParameter("configs", "invalid", f"configs must hold exactly one key, {key!r}"))
            else:
                merged = {**row.configs, **dict.fromkeys(row.secrets, "\x00stored")}
                for k, v in inner.items():
                    if v is None:
                        merged.pop(k, None)
                    else:
                        merged[k] = v
                check = {k: ("x" * 16 if v == "\x00stored" else v) for k, v in merged.items()}
                extra.extend(validate_configs(row.strategy_type, {key: check}))
        if raw.get("dcr_provider_id") is not None:
            if row.strategy_type == "key_auth":
                extra.append(InvalidParameter("dcr_provider_id", "invalid", "a key_auth strategy has no DCR provider"))
            _, problems = await _provider_problem(ctx, raw.get("dcr_provider_id"))
            extra.extend(problems)
    body = parse(AuthStrategyUpdate, raw, extra_items=extra)
    sent = body.model_fields_set
    before = _snapshot(row)
    if "dcr_provider_id" in sent:
        await _guard_provider_change(ctx, row, body.dcr_provider_id)
        row.dcr_provider_id = body.dcr_provider_id
    if "name" in sent and body.name is not None:
        row.name = body.name
    if "display_name" in sent and body.display_name is not None:
        row.display_name = body.display_name
    if "labels" in sent and body.labels is not None:
        labels = dict(row.labels)
        for k, v in body.labels.items():
            if v is None:
                labels.pop(k, None)
            else:
                labels[k] = v
        row.labels = labels
    if "principals" in sent and body.principals is not None:
        row.principals = body.principals.model_dump()
    if merged is not None:
        kept = {k: v for k, v in merged.items() if v != "\x00stored"}
        plain, secrets = _normalise_config(row.strategy_type, kept)
        row.configs = plain
        stored = {k: v for k, v in row.secrets.items() if merged.get(k) == "\x00stored"}
        stored.update({k: ctx.vault.encrypt(v, table=TABLE, row_id=row.id, field=k) for k, v in secrets.items()})
        row.secrets = stored
    audit.record(
        ctx, "auth_strategy.update", "auth_strategy", row.id, changes=audit.diff(before, _snapshot(row), _SECRET_MARK)
    )
    await installation.bump_config_version(ctx)  # issuer, scopes, key names… are in the snapshot
    await ctx.session.commit()
    return view(row, await _provider(ctx, row), row.id in await usage.active_strategy_ids(ctx))


async def delete(ctx: Ctx, strategy_id: uuid.UUID) -> None:
    row = await get_row(ctx, strategy_id)
    referrers = await usage.strategy_referrers(ctx, row.id)
    if referrers:
        raise ConflictError(f"auth strategy {row.name!r} is in use by {', '.join(referrers[:3])}")
    await ctx.session.delete(row)
    audit.record(ctx, "auth_strategy.delete", "auth_strategy", row.id, status_code=204)
    await installation.bump_config_version(ctx)  # issuer, scopes, key names… are in the snapshot
    await ctx.session.commit()
