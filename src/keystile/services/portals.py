"""Portals and portal product versions (management-api.md §5): CRUD, the `default` portal, publication."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from keystile.domain.catalog import (
    PortalCreate,
    PortalProductVersionCreate,
    PortalProductVersionReplace,
    PortalProductVersionUpdate,
    PortalUpdate,
    null_problems,
)
from keystile.domain.errors import ConflictError, InvalidParameter, NotFoundError, ValidationError
from keystile.domain.listing import ListQuery, ListSpec, Page
from keystile.domain.time import rfc3339
from keystile.domain.validation import parse
from keystile.services import applications, audit, installation, mail, outbox
from keystile.services.context import Ctx
from keystile.store.listing import paginate
from keystile.store.models import (
    ApiProduct,
    Application,
    AuthStrategy,
    Developer,
    Portal,
    PortalProductVersion,
    ProductPortal,
    ProductVersion,
    Registration,
)

__all__ = [
    "DEFAULT_PORTAL",
    "LIST_SPEC",
    "PPV_LIST_SPEC",
    "create",
    "create_default",
    "create_product_version",
    "delete",
    "delete_product_version",
    "get",
    "get_product_version",
    "get_row",
    "list_portals",
    "list_product_versions",
    "replace_product_version",
    "update",
    "update_product_version",
]

DEFAULT_PORTAL = "default"

LIST_SPEC = ListSpec(filters={"id": "uuid", "name": "string"}, sorts=("created_at", "updated_at", "name"))
PPV_LIST_SPEC = ListSpec(
    filters={"publish_status": "string", "deprecated": "bool", "product_version_id": "uuid"},
    sorts=("created_at", "updated_at"),
)


async def create_default(session: AsyncSession) -> Portal:
    """The `default` portal, added to `session` at first start (the caller commits)."""
    row = Portal(id=uuid.uuid4(), name=DEFAULT_PORTAL, display_name=DEFAULT_PORTAL, labels={})
    session.add(row)
    return row


def _default_domain(ctx: Ctx) -> str:
    parts = urlsplit(ctx.runtime.settings.public_url)
    return parts.netloc or parts.hostname or ""


def _merge_labels(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(current)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


# ---- portals ------------------------------------------------------------------------------------------


async def _counts(ctx: Ctx, portal_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[int, int, int]]:
    """portal id → (application_count, developer_count, published_product_count)."""
    out = dict.fromkeys(portal_ids, (0, 0, 0))
    if not portal_ids:
        return out
    apps = dict(
        (
            await ctx.session.execute(
                select(Application.portal_id, func.count())
                .where(Application.portal_id.in_(portal_ids), Application.status != "deleting")
                .group_by(Application.portal_id)
            )
        ).all()
    )
    devs = dict(
        (
            await ctx.session.execute(
                select(Developer.portal_id, func.count())
                .where(Developer.portal_id.in_(portal_ids))
                .group_by(Developer.portal_id)
            )
        ).all()
    )
    published = dict(
        (
            await ctx.session.execute(
                select(PortalProductVersion.portal_id, func.count(func.distinct(ProductVersion.product_id)))
                .join(ProductVersion, ProductVersion.id == PortalProductVersion.product_version_id)
                .where(
                    PortalProductVersion.portal_id.in_(portal_ids), PortalProductVersion.publish_status == "published"
                )
                .group_by(PortalProductVersion.portal_id)
            )
        ).all()
    )
    for pid in portal_ids:
        out[pid] = (int(apps.get(pid, 0)), int(devs.get(pid, 0)), int(published.get(pid, 0)))
    return out


def _view(ctx: Ctx, row: Portal, counts: tuple[int, int, int]) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "display_name": row.display_name,
        "description": row.description,
        "default_domain": _default_domain(ctx),
        "is_public": row.is_public,
        "rbac_enabled": row.rbac_enabled,
        "auto_approve_applications": row.auto_approve_applications,
        "auto_approve_developers": row.auto_approve_developers,
        "custom_domain": row.custom_domain,
        "custom_client_domain": row.custom_client_domain,
        "default_application_auth_strategy_id": (
            str(row.default_application_auth_strategy_id) if row.default_application_auth_strategy_id else None
        ),
        "labels": dict(row.labels),
        "revoke_on_developer_revoke": row.revoke_on_developer_revoke,
        "application_count": counts[0],
        "developer_count": counts[1],
        "published_product_count": counts[2],
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }


async def _out(ctx: Ctx, row: Portal) -> dict[str, Any]:
    return _view(ctx, row, (await _counts(ctx, [row.id]))[row.id])


async def get_row(ctx: Ctx, portal_id: uuid.UUID) -> Portal:
    row = await ctx.session.get(Portal, portal_id)
    if row is None:
        raise NotFoundError()
    return row


async def _strategy_problem(ctx: Ctx, raw: Any) -> list[InvalidParameter]:
    if not isinstance(raw, dict):
        return []
    value = raw.get("default_application_auth_strategy_id")
    if not isinstance(value, str):
        return []
    try:
        sid = uuid.UUID(value)
    except ValueError:
        return []
    if await ctx.session.get(AuthStrategy, sid) is None:
        return [
            InvalidParameter(
                "default_application_auth_strategy_id",
                "missing_reference",
                f"no application auth strategy has the id {sid}; create it first or fix the id",
            )
        ]
    return []


async def _check_unique(ctx: Ctx, name: str | None, domain: str | None, exclude: uuid.UUID | None) -> None:
    if name is not None:
        stmt = select(Portal.id).where(Portal.name == name)
        if exclude is not None:
            stmt = stmt.where(Portal.id != exclude)
        if (await ctx.session.execute(stmt.limit(1))).first() is not None:
            raise ConflictError(f"a portal named {name!r} already exists")
    if domain is not None:
        named = select(Portal.name).where(Portal.custom_domain == domain)
        if exclude is not None:
            named = named.where(Portal.id != exclude)
        other = (await ctx.session.execute(named.limit(1))).scalar_one_or_none()
        if other is not None:
            raise ConflictError(f"custom_domain {domain!r} is already used by portal {other!r}")


def _snapshot(row: Portal) -> dict[str, Any]:
    return {
        "name": row.name,
        "display_name": row.display_name,
        "description": row.description,
        "is_public": row.is_public,
        "auto_approve_applications": row.auto_approve_applications,
        "auto_approve_developers": row.auto_approve_developers,
        "custom_domain": row.custom_domain,
        "custom_client_domain": row.custom_client_domain,
        "default_application_auth_strategy_id": (
            str(row.default_application_auth_strategy_id) if row.default_application_auth_strategy_id else None
        ),
        "labels": dict(row.labels),
        "revoke_on_developer_revoke": row.revoke_on_developer_revoke,
    }


_PLAIN_FIELDS = (
    "description",
    "is_public",
    "auto_approve_applications",
    "auto_approve_developers",
    "custom_domain",
    "custom_client_domain",
    "default_application_auth_strategy_id",
    "revoke_on_developer_revoke",
)
_NOT_NULL = frozenset(
    {"is_public", "auto_approve_applications", "auto_approve_developers", "revoke_on_developer_revoke"}
)


_PORTAL_NOT_NULL = {
    "name": "is_string",
    "display_name": "is_string",
    "is_public": "is_boolean",
    "rbac_enabled": "is_boolean",
    "auto_approve_applications": "is_boolean",
    "auto_approve_developers": "is_boolean",
    "revoke_on_developer_revoke": "is_boolean",
    "labels": "is_object",
}
_PPV_NOT_NULL = {
    "publish_status": "enum",
    "application_registration_enabled": "is_boolean",
    "auto_approve_registration": "is_boolean",
    "deprecated": "is_boolean",
    "auth_strategy_ids": "is_array",
    "notify_developers": "is_boolean",
}


def _null_problems(raw: Any) -> list[InvalidParameter]:
    return null_problems(raw, _PORTAL_NOT_NULL)


async def create(ctx: Ctx, raw: Any) -> dict[str, Any]:
    body = parse(PortalCreate, raw, extra_items=[*_null_problems(raw), *await _strategy_problem(ctx, raw)])
    await _check_unique(ctx, body.name, body.custom_domain, None)
    row = Portal(
        id=uuid.uuid4(),
        name=body.name,
        display_name=body.display_name or body.name,
        description=body.description,
        is_public=bool(body.is_public),
        auto_approve_developers=bool(body.auto_approve_developers),
        auto_approve_applications=bool(body.auto_approve_applications),
        default_application_auth_strategy_id=body.default_application_auth_strategy_id,
        rbac_enabled=False,
        custom_domain=body.custom_domain,
        custom_client_domain=body.custom_client_domain,
        revoke_on_developer_revoke=True if body.revoke_on_developer_revoke is None else body.revoke_on_developer_revoke,
        labels=body.labels or {},
    )
    ctx.session.add(row)
    audit.record(ctx, "portal.create", "portal", row.id, status_code=201, changes=audit.diff({}, _snapshot(row)))
    await ctx.session.flush()
    out = await _out(ctx, row)  # read before the commit: no transaction stays open after it
    await ctx.session.commit()
    return out


async def get(ctx: Ctx, portal_id: uuid.UUID) -> dict[str, Any]:
    return await _out(ctx, await get_row(ctx, portal_id))


async def list_portals(ctx: Ctx, query: ListQuery) -> Page:
    cols: dict[str, Any] = {
        "id": Portal.id,
        "name": Portal.name,
        "created_at": Portal.created_at,
        "updated_at": Portal.updated_at,
    }
    rows, total = await paginate(ctx.session, select(Portal), query, cols, Portal.id)
    portals = [r[0] for r in rows]
    counts = await _counts(ctx, [p.id for p in portals])
    return Page([_view(ctx, p, counts[p.id]) for p in portals], query.page_number, query.page_size, total)


async def update(ctx: Ctx, portal_id: uuid.UUID, raw: Any) -> dict[str, Any]:
    row = await get_row(ctx, portal_id)
    body = parse(PortalUpdate, raw, extra_items=[*_null_problems(raw), *await _strategy_problem(ctx, raw)])
    sent = body.model_fields_set
    await _check_unique(
        ctx,
        body.name if "name" in sent and body.name != row.name else None,
        body.custom_domain if "custom_domain" in sent and body.custom_domain != row.custom_domain else None,
        row.id,
    )
    before = _snapshot(row)
    if "name" in sent and body.name is not None:
        row.name = body.name
    if "display_name" in sent and body.display_name is not None:
        row.display_name = body.display_name
    for key in _PLAIN_FIELDS:
        if key in sent:
            setattr(row, key, getattr(body, key))
    if "labels" in sent and body.labels is not None:
        row.labels = _merge_labels(row.labels, body.labels)
    audit.record(ctx, "portal.update", "portal", row.id, changes=audit.diff(before, _snapshot(row)))
    await ctx.session.commit()
    return await _out(ctx, row)


async def delete(ctx: Ctx, portal_id: uuid.UUID, *, force: bool = False) -> None:
    """Delete a portal.

    Raises:
        ConflictError: it is the last portal.
        ValidationError: it has developers or registration-enabled versions and `force` is not set.
    """
    row = await get_row(ctx, portal_id)
    total = int((await ctx.session.execute(select(func.count()).select_from(Portal))).scalar_one())
    if total <= 1:
        raise ConflictError(f"portal {row.name!r} is the last portal; create another one before deleting it")
    developers = int(
        (
            await ctx.session.execute(select(func.count()).select_from(Developer).where(Developer.portal_id == row.id))
        ).scalar_one()
    )
    enabled = int(
        (
            await ctx.session.execute(
                select(func.count())
                .select_from(PortalProductVersion)
                .where(
                    PortalProductVersion.portal_id == row.id,
                    PortalProductVersion.application_registration_enabled.is_(True),
                )
            )
        ).scalar_one()
    )
    if (developers or enabled) and not force:
        raise ValidationError.single(
            "force",
            "required",
            f"portal {row.name!r} has {developers} developers and {enabled} product versions with application "
            "registration enabled; repeat with ?force=true to delete it with its developers, applications and "
            "registrations",
            source="query",
        )
    leftover = await _delete_applications(ctx, row.id)
    if leftover:
        raise ConflictError(
            f"portal {row.name!r} is being emptied: {leftover} applications wait for their IdP client to be deleted "
            "(see /v2/idp-operations); repeat the DELETE once they are gone"
        )
    await ctx.session.execute(sql_delete(Registration).where(Registration.portal_id == row.id))
    await ctx.session.execute(sql_delete(Developer).where(Developer.portal_id == row.id))
    await ctx.session.execute(sql_delete(PortalProductVersion).where(PortalProductVersion.portal_id == row.id))
    await ctx.session.execute(sql_delete(ProductPortal).where(ProductPortal.portal_id == row.id))
    await ctx.session.delete(row)
    await installation.bump_config_version(ctx)
    audit.record(
        ctx,
        "portal.delete",
        "portal",
        row.id,
        status_code=204,
        changes={"developers_deleted": developers} if developers else None,
    )
    await ctx.session.commit()


async def _delete_applications(ctx: Ctx, portal_id: uuid.UUID) -> int:
    """Delete the portal's applications the way an application DELETE does (IdP first, through `deleting`,
    retried from the outbox); the number still waiting for their IdP client afterwards."""
    apps = (
        (
            await ctx.session.execute(
                select(Application).where(
                    Application.portal_id == portal_id, Application.status.notin_(("deleting", "provisioning"))
                )
            )
        )
        .scalars()
        .all()
    )
    entries: list[uuid.UUID] = []
    for app in apps:
        entry = await applications.delete_application(ctx, app, status_code=204)
        if entry is not None:
            entries.append(entry)
    for entry in entries:
        await outbox.run_one(ctx.runtime, entry)
    left = select(func.count()).select_from(Application).where(Application.portal_id == portal_id)
    return int((await ctx.session.execute(left)).scalar_one())


# ---- portal product versions --------------------------------------------------------------------------


def _strategy_summary(strategy: AuthStrategy) -> dict[str, Any]:
    """Konnect's `AuthStrategy` item (`credential_type` discriminates key-auth and client-credentials)."""
    out: dict[str, Any] = {"id": str(strategy.id), "name": strategy.name}
    if strategy.strategy_type == "key_auth":
        out["credential_type"] = "key_auth"
        out["key_names"] = list(strategy.configs.get("key_names") or ["apikey"])
        if strategy.configs.get("ttl"):
            out["ttl"] = dict(strategy.configs["ttl"])
        return out
    out["credential_type"] = "client_credentials" if strategy.dcr_provider_id else "self_managed_client_credentials"
    out["auth_methods"] = list(strategy.configs.get("auth_methods") or [])
    out["available_scopes"] = list(strategy.configs.get("scopes") or [])
    return out


def _ppv_view(row: PortalProductVersion, strategy: AuthStrategy | None) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "product_version_id": str(row.product_version_id),
        "publish_status": row.publish_status,
        "application_registration_enabled": row.application_registration_enabled,
        "auto_approve_registration": row.auto_approve_registration,
        "deprecated": row.deprecated,
        "auth_strategies": [_strategy_summary(strategy)] if strategy is not None else [],
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }


async def _ppv_out(ctx: Ctx, row: PortalProductVersion) -> dict[str, Any]:
    strategy = await ctx.session.get(AuthStrategy, row.auth_strategy_id) if row.auth_strategy_id is not None else None
    return _ppv_view(row, strategy)


async def _ppv_row(ctx: Ctx, portal_id: uuid.UUID, version_id: uuid.UUID) -> PortalProductVersion | None:
    stmt = select(PortalProductVersion).where(
        PortalProductVersion.portal_id == portal_id, PortalProductVersion.product_version_id == version_id
    )
    return (await ctx.session.execute(stmt)).scalar_one_or_none()


async def list_product_versions(ctx: Ctx, portal_id: uuid.UUID, query: ListQuery) -> Page:
    await get_row(ctx, portal_id)
    cols: dict[str, Any] = {
        "publish_status": PortalProductVersion.publish_status,
        "deprecated": PortalProductVersion.deprecated,
        "product_version_id": PortalProductVersion.product_version_id,
        "created_at": PortalProductVersion.created_at,
        "updated_at": PortalProductVersion.updated_at,
    }
    stmt = (
        select(PortalProductVersion, AuthStrategy)
        .outerjoin(AuthStrategy, AuthStrategy.id == PortalProductVersion.auth_strategy_id)
        .where(PortalProductVersion.portal_id == portal_id)
    )
    rows, total = await paginate(ctx.session, stmt, query, cols, PortalProductVersion.id)
    return Page([_ppv_view(r[0], r[1]) for r in rows], query.page_number, query.page_size, total)


async def get_product_version(ctx: Ctx, portal_id: uuid.UUID, version_id: uuid.UUID) -> dict[str, Any]:
    await get_row(ctx, portal_id)
    row = await _ppv_row(ctx, portal_id, version_id)
    if row is None:
        raise NotFoundError()
    return await _ppv_out(ctx, row)


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def _reference_problems(ctx: Ctx, raw: Any, *, with_version: bool) -> list[InvalidParameter]:
    if not isinstance(raw, dict):
        return []
    problems: list[InvalidParameter] = []
    if with_version:
        vid = _uuid_or_none(raw.get("product_version_id"))
        if vid is not None and await ctx.session.get(ProductVersion, vid) is None:
            problems.append(
                InvalidParameter(
                    "product_version_id",
                    "missing_reference",
                    f"no API product version has the id {vid}; create it first or fix the id",
                )
            )
    ids = raw.get("auth_strategy_ids")
    if isinstance(ids, list) and len(ids) <= 1:
        for i, item in enumerate(ids):
            sid = _uuid_or_none(item)
            if sid is not None and await ctx.session.get(AuthStrategy, sid) is None:
                problems.append(
                    InvalidParameter(
                        f"auth_strategy_ids[{i}]",
                        "missing_reference",
                        f"no application auth strategy has the id {sid}; create it first or fix the id",
                    )
                )
    return problems


def _dependent(enabled: bool, strategy: uuid.UUID | None) -> None:
    if enabled and strategy is None:
        raise ValidationError.single(
            "application_registration_enabled",
            "dependent_fields",
            "application_registration_enabled needs an auth strategy: give auth_strategy_ids with one strategy id",
            dependents=["auth_strategy_ids"],
        )


async def _guard_strategy_change(
    ctx: Ctx, row: PortalProductVersion, new_strategy: uuid.UUID | None, version: ProductVersion
) -> None:
    old = row.auth_strategy_id
    if old is None or new_strategy == old:
        return
    held = int(
        (
            await ctx.session.execute(
                select(func.count())
                .select_from(Registration)
                .join(Application, Application.id == Registration.application_id)
                .where(
                    Registration.portal_id == row.portal_id,
                    Registration.product_version_id == row.product_version_id,
                    Application.auth_strategy_id == old,
                )
            )
        ).scalar_one()
    )
    if held:
        strategy = await ctx.session.get(AuthStrategy, old)
        name = strategy.name if strategy is not None else str(old)
        raise ConflictError(
            f"product version {version.name!r} has {held} registrations of applications on auth strategy {name!r} "
            "in this portal; revoke or delete them before replacing the strategy"
        )


async def _ensure_product_listed(ctx: Ctx, portal_id: uuid.UUID, version: ProductVersion) -> None:
    listed = (
        await ctx.session.execute(
            select(ProductPortal.product_id).where(
                ProductPortal.portal_id == portal_id, ProductPortal.product_id == version.product_id
            )
        )
    ).first()
    if listed is None:
        ctx.session.add(ProductPortal(product_id=version.product_id, portal_id=portal_id))


def _ppv_snapshot(row: PortalProductVersion) -> dict[str, Any]:
    return {
        "publish_status": row.publish_status,
        "application_registration_enabled": row.application_registration_enabled,
        "auto_approve_registration": row.auto_approve_registration,
        "deprecated": row.deprecated,
        "auth_strategy_ids": [str(row.auth_strategy_id)] if row.auth_strategy_id else [],
    }


async def _version_row(ctx: Ctx, version_id: uuid.UUID) -> ProductVersion:
    version = await ctx.session.get(ProductVersion, version_id)
    if version is None:
        raise NotFoundError()
    return version


async def _notify_deprecation(ctx: Ctx, portal: Portal, version: ProductVersion) -> int:
    """Mail the developers holding registrations of `version` in `portal` that it is deprecated; how many."""
    product = await ctx.session.get(ApiProduct, version.product_id)
    rows = await ctx.session.execute(
        select(Developer.email, Developer.full_name)
        .join(Application, Application.developer_id == Developer.id)
        .join(Registration, Registration.application_id == Application.id)
        .where(
            Registration.portal_id == portal.id,
            Registration.product_version_id == version.id,
            Registration.status.in_(("approved", "pending")),
        )
        .distinct()
    )
    recipients = list(rows)
    what = f"{product.name if product is not None else 'API'} {version.name}"
    for email, full_name in recipients:
        await mail.send(
            ctx.runtime,
            mail.Mail(
                to=email,
                subject=f"{what} is deprecated",
                text=(
                    f"Hello {full_name},\n\n{what}, which your applications are registered for in the portal "
                    f"{portal.display_name}, is now deprecated. Plan a move to a newer version.\n"
                ),
                kind="deprecation",
            ),
        )
    return len(recipients)


async def create_product_version(ctx: Ctx, portal_id: uuid.UUID, raw: Any) -> dict[str, Any]:
    portal = await get_row(ctx, portal_id)
    body = parse(PortalProductVersionCreate, raw, extra_items=await _reference_problems(ctx, raw, with_version=True))
    strategy_id = body.auth_strategy_ids[0] if body.auth_strategy_ids else None
    _dependent(body.application_registration_enabled, strategy_id)
    version = await _version_row(ctx, body.product_version_id)
    if await _ppv_row(ctx, portal.id, version.id) is not None:
        raise ConflictError(
            f"product version {version.name!r} is already in portal {portal.name!r}; PUT or PATCH it",
            location=f"/v2/portals/{portal.id}/product-versions/{version.id}",
        )
    row = PortalProductVersion(
        id=uuid.uuid4(),
        portal_id=portal.id,
        product_version_id=version.id,
        publish_status=body.publish_status,
        application_registration_enabled=body.application_registration_enabled,
        auto_approve_registration=body.auto_approve_registration,
        deprecated=body.deprecated,
        auth_strategy_id=strategy_id,
    )
    ctx.session.add(row)
    await _ensure_product_listed(ctx, portal.id, version)
    await installation.bump_config_version(ctx)
    audit.record(
        ctx,
        "portal_product_version.create",
        "portal_product_version",
        row.id,
        status_code=201,
        changes=audit.diff(
            {}, {"portal_id": str(portal.id), "product_version_id": str(version.id), **_ppv_snapshot(row)}
        ),
    )
    await ctx.session.flush()
    out = await _ppv_out(ctx, row)
    await ctx.session.commit()
    return out


async def replace_product_version(
    ctx: Ctx, portal_id: uuid.UUID, version_id: uuid.UUID, raw: Any
) -> tuple[dict[str, Any], bool]:
    """PUT: (view, created) — Extension: creates the portal product version when absent."""
    portal = await get_row(ctx, portal_id)
    body = parse(PortalProductVersionReplace, raw, extra_items=await _reference_problems(ctx, raw, with_version=False))
    strategy_id = body.auth_strategy_ids[0] if body.auth_strategy_ids else None
    _dependent(body.application_registration_enabled, strategy_id)
    version = await _version_row(ctx, version_id)
    row = await _ppv_row(ctx, portal.id, version.id)
    created = row is None
    before: dict[str, Any] = {}
    if row is None:
        row = PortalProductVersion(id=uuid.uuid4(), portal_id=portal.id, product_version_id=version.id)
        ctx.session.add(row)
    else:
        before = _ppv_snapshot(row)
        await _guard_strategy_change(ctx, row, strategy_id, version)
    newly_deprecated = body.deprecated and not row.deprecated
    row.publish_status = body.publish_status
    row.application_registration_enabled = body.application_registration_enabled
    row.auto_approve_registration = body.auto_approve_registration
    row.deprecated = body.deprecated
    row.auth_strategy_id = strategy_id
    await _ensure_product_listed(ctx, portal.id, version)
    await installation.bump_config_version(ctx)
    audit.record(
        ctx,
        "portal_product_version.replace",
        "portal_product_version",
        row.id,
        status_code=201 if created else 200,
        changes=audit.diff(before, _ppv_snapshot(row)),
    )
    await ctx.session.flush()
    out = await _ppv_out(ctx, row)
    await ctx.session.commit()
    if body.notify_developers and newly_deprecated and not created:
        await _notify_deprecation(ctx, portal, version)
    return out, created


async def update_product_version(ctx: Ctx, portal_id: uuid.UUID, version_id: uuid.UUID, raw: Any) -> dict[str, Any]:
    portal = await get_row(ctx, portal_id)
    row = await _ppv_row(ctx, portal.id, version_id)
    if row is None:
        raise NotFoundError()
    problems = [*null_problems(raw, _PPV_NOT_NULL), *await _reference_problems(ctx, raw, with_version=False)]
    body = parse(PortalProductVersionUpdate, raw, extra_items=problems)
    sent = body.model_fields_set
    version = await _version_row(ctx, version_id)
    strategy_id = row.auth_strategy_id
    if "auth_strategy_ids" in sent:
        strategy_id = body.auth_strategy_ids[0] if body.auth_strategy_ids else None
    enabled = row.application_registration_enabled
    if "application_registration_enabled" in sent and body.application_registration_enabled is not None:
        enabled = body.application_registration_enabled
    _dependent(enabled, strategy_id)
    await _guard_strategy_change(ctx, row, strategy_id, version)
    before = _ppv_snapshot(row)
    newly_deprecated = bool(body.deprecated) and not row.deprecated
    for key in ("publish_status", "auto_approve_registration", "deprecated"):
        if key in sent and getattr(body, key) is not None:
            setattr(row, key, getattr(body, key))
    row.application_registration_enabled = enabled
    row.auth_strategy_id = strategy_id
    await installation.bump_config_version(ctx)
    audit.record(
        ctx,
        "portal_product_version.update",
        "portal_product_version",
        row.id,
        changes=audit.diff(before, _ppv_snapshot(row)),
    )
    await ctx.session.flush()
    out = await _ppv_out(ctx, row)
    await ctx.session.commit()
    if body.notify_developers and newly_deprecated:
        await _notify_deprecation(ctx, portal, version)
    return out


async def delete_product_version(ctx: Ctx, portal_id: uuid.UUID, version_id: uuid.UUID) -> None:
    await get_row(ctx, portal_id)
    row = await _ppv_row(ctx, portal_id, version_id)
    if row is None:
        raise NotFoundError()
    await ctx.session.delete(row)
    await installation.bump_config_version(ctx)
    audit.record(ctx, "portal_product_version.delete", "portal_product_version", row.id, status_code=204)
    await ctx.session.commit()
