"""Registrations: an application asking for a product version (contracts/portal-api.md §6, management-api.md §5).

A registration starts `approved` when the portal's `auto_approve_applications` or the version's
`auto_approve_registration` says so, else `pending` until an admin decides. Only `approved` lets traffic through,
so every change into or out of `approved` bumps the config version and tells the provider from the outbox
(`add_registration` / `remove_registration`).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from keystile.domain.applications import RegistrationCreate, RegistrationStatusUpdate
from keystile.domain.errors import ConflictError, InvalidParameter, NotFoundError, ValidationError
from keystile.domain.listing import ListQuery, ListSpec, Page
from keystile.domain.time import rfc3339
from keystile.domain.validation import parse
from keystile.services import applications, audit, installation, outbox
from keystile.services.context import Ctx
from keystile.store.listing import paginate
from keystile.store.models import (
    ApiProduct,
    Application,
    AuthStrategy,
    DcrProvider,
    Developer,
    Portal,
    PortalProductVersion,
    ProductVersion,
    Registration,
)

__all__ = [
    "ADMIN_APP_LIST_SPEC",
    "ADMIN_LIST_SPEC",
    "LIST_SPEC",
    "admin_delete",
    "admin_get",
    "admin_list",
    "admin_update",
    "approval_changed",
    "create",
    "delete",
    "get",
    "list_registrations",
]

LIST_SPEC = ListSpec(
    filters={"id": "uuid", "status": "string", "product_name": "string", "product_version_name": "string"},
    sorts=("created_at", "updated_at", "status"),
)
ADMIN_LIST_SPEC = ListSpec(
    filters={"developer_id": "uuid", "developer_name": "string", "application_name": "string", "status": "string"},
    sorts=("created_at", "updated_at", "developer_id", "status"),
)
ADMIN_APP_LIST_SPEC = ListSpec(filters={"status": "string"}, sorts=("created_at", "updated_at", "status"))


def view(reg: Registration, version: ProductVersion, product: ApiProduct) -> dict[str, Any]:
    """The Portal API registration object."""
    return {
        "id": str(reg.id),
        "status": reg.status,
        "product_id": str(product.id),
        "product_name": product.name,
        "product_version_id": str(version.id),
        "product_version_name": version.name,
        "application_id": str(reg.application_id),
        "created_at": rfc3339(reg.created_at),
        "updated_at": rfc3339(reg.updated_at),
    }


def admin_view(
    reg: Registration, version: ProductVersion, product: ApiProduct, app: Application, dev: Developer
) -> dict[str, Any]:
    """The Management API registration object."""
    return {
        "id": str(reg.id),
        "status": reg.status,
        "product": {"id": str(product.id), "name": product.name},
        "product_version": {"id": str(version.id), "name": version.name},
        "application": {"id": str(app.id), "name": app.name},
        "developer": {"id": str(dev.id), "name": dev.full_name},
        "granted_scopes": None,
        "created_at": rfc3339(reg.created_at),
        "updated_at": rfc3339(reg.updated_at),
    }


async def _notify(ctx: Ctx, app: Application, reg: Registration, event_type: str) -> None:
    """Queue `add_registration` / `remove_registration` for the provider, where it acts on them."""
    if app.dcr_provider_id is None or app.status != "active":
        return
    provider = await ctx.session.get(DcrProvider, app.dcr_provider_id)
    strategy = await ctx.session.get(AuthStrategy, app.auth_strategy_id)
    if provider is None or strategy is None:
        return
    from keystile.services.verification import adapter_for

    if not adapter_for(ctx, provider).capabilities.acts_on(event_type):
        return
    cfg = strategy.configs
    args = dict(zip(cfg.get("token_post_args_names") or (), cfg.get("token_post_args_values") or (), strict=False))
    outbox.enqueue_event(ctx, app, event_type, product_version_id=reg.product_version_id, audience=args.get("audience"))


async def approval_changed(ctx: Ctx, app: Application, reg: Registration, was: str | None, now: str | None) -> None:
    """What a registration moving into or out of `approved` sets off, in the caller's transaction: the config
    version moves and the provider hears of it from the outbox (`add_registration` / `remove_registration`)."""
    if (was == "approved") == (now == "approved"):
        return
    await installation.bump_config_version(ctx)
    await _notify(ctx, app, reg, "add_registration" if now == "approved" else "remove_registration")


_approval_changed = approval_changed  # the earlier name, still called by services.developers


async def announce_bulk_removal(ctx: Ctx, version_ids: list[uuid.UUID]) -> int:
    """Before the registrations on these versions go in bulk (a forced product or version delete), in the caller's
    transaction: each approved one is announced to its provider as `remove_registration`, as if withdrawn one by
    one. The number announced."""
    if not version_ids:
        return 0
    rows = await ctx.session.execute(
        select(Registration, Application)
        .join(Application, Registration.application_id == Application.id)
        .where(Registration.product_version_id.in_(version_ids), Registration.status == "approved")
        .order_by(Registration.created_at, Registration.id)
    )
    count = 0
    for reg, app in rows.all():
        await _notify(ctx, app, reg, "remove_registration")
        count += 1
    return count


async def _version(ctx: Ctx, version_id: uuid.UUID) -> tuple[ProductVersion, ApiProduct]:
    version = await ctx.session.get(ProductVersion, version_id)
    if version is None:
        raise NotFoundError()
    product = await ctx.session.get(ApiProduct, version.product_id)
    assert product is not None
    return version, product


def _wake(ctx: Ctx) -> None:
    runner = ctx.runtime.extras.get("outbox")
    if isinstance(runner, outbox.Runner):
        runner.wake()


# ---- developer ------------------------------------------------------------------------------------------


async def create(ctx: Ctx, app_id: uuid.UUID, raw: Any) -> dict[str, Any]:
    """Ask for access to a product version.

    Raises:
        ValidationError: the version is not published here with registration enabled (`missing_reference`), its
            strategy is not the application's (`invalid`), scopes without developer-managed scopes.
        NotFoundError, ConflictError (a registration for this version exists; `provisioning`).
    """
    _, app = await applications.load_own(ctx, app_id)
    body = parse(RegistrationCreate, raw)
    ppv = (
        await ctx.session.execute(
            select(PortalProductVersion).where(
                PortalProductVersion.portal_id == app.portal_id,
                PortalProductVersion.product_version_id == body.product_version_id,
                PortalProductVersion.publish_status == "published",
                PortalProductVersion.application_registration_enabled.is_(True),
            )
        )
    ).scalar_one_or_none()
    if ppv is None:
        raise ValidationError.single(
            "product_version_id",
            "missing_reference",
            f"product version {body.product_version_id} is not published in this portal with registration enabled",
        )
    items: list[InvalidParameter] = []
    app_strategy = await ctx.session.get(AuthStrategy, app.auth_strategy_id)
    assert app_strategy is not None
    if ppv.auth_strategy_id != app.auth_strategy_id:
        wanted = await ctx.session.get(AuthStrategy, ppv.auth_strategy_id) if ppv.auth_strategy_id else None
        wanted_name = wanted.display_name if wanted is not None else "none"
        items.append(
            InvalidParameter(
                "product_version_id",
                "invalid",
                f"this product version uses the auth strategy {wanted_name!r}, but the application uses "
                f"{app_strategy.display_name!r}; create an application with {wanted_name!r}",
            )
        )
    provider = await ctx.session.get(DcrProvider, app.dcr_provider_id) if app.dcr_provider_id else None
    if body.scopes:
        allowed = applications.available_scopes(app_strategy, provider)
        if not applications.developer_managed_scopes(provider):
            items.append(
                InvalidParameter(
                    "scopes", "invalid", "this auth strategy does not let developers choose scopes; leave scopes out"
                )
            )
        else:
            items.extend(
                InvalidParameter(
                    f"scopes[{i}]", "enum", f"scopes[{i}] must be one of: {', '.join(allowed)}", choices=allowed
                )
                for i, s in enumerate(body.scopes)
                if s not in allowed
            )
    if items:
        raise ValidationError(items)
    existing = await ctx.session.execute(
        select(Registration.id).where(
            Registration.application_id == app.id, Registration.product_version_id == body.product_version_id
        )
    )
    if existing.first() is not None:
        raise ConflictError("this application already has a registration for this product version")
    portal = await ctx.session.get(Portal, app.portal_id)
    auto = bool((portal is not None and portal.auto_approve_applications) or ppv.auto_approve_registration)
    reg = Registration(
        id=uuid.uuid4(),
        application_id=app.id,
        product_version_id=body.product_version_id,
        portal_id=app.portal_id,
        status="approved" if auto else "pending",
        scopes=list(body.scopes) if body.scopes else None,
    )
    ctx.session.add(reg)
    await approval_changed(ctx, app, reg, None, reg.status)
    audit.record(
        ctx,
        "registration.create",
        "registration",
        reg.id,
        status_code=201,
        changes={"status": {"from": None, "to": reg.status}},
    )
    try:
        await ctx.session.commit()
    except IntegrityError as exc:  # a concurrent POST for the same version won
        await ctx.session.rollback()
        raise ConflictError("this application already has a registration for this product version") from exc
    _wake(ctx)
    version, product = await _version(ctx, reg.product_version_id)
    return view(reg, version, product)


async def _own(ctx: Ctx, app_id: uuid.UUID, reg_id: uuid.UUID) -> tuple[Application, Registration]:
    _, app = await applications.load_own(ctx, app_id)
    reg = await ctx.session.get(Registration, reg_id)
    if reg is None or reg.application_id != app.id:
        raise NotFoundError()
    return app, reg


async def get(ctx: Ctx, app_id: uuid.UUID, reg_id: uuid.UUID) -> dict[str, Any]:
    _, reg = await _own(ctx, app_id, reg_id)
    version, product = await _version(ctx, reg.product_version_id)
    return view(reg, version, product)


async def list_registrations(ctx: Ctx, app_id: uuid.UUID, query: ListQuery) -> Page:
    _, app = await applications.load_own(ctx, app_id)
    cols: dict[str, Any] = {
        "id": Registration.id,
        "status": Registration.status,
        "product_name": ApiProduct.name,
        "product_version_name": ProductVersion.name,
        "created_at": Registration.created_at,
        "updated_at": Registration.updated_at,
    }
    stmt = (
        select(Registration, ProductVersion, ApiProduct)
        .join(ProductVersion, Registration.product_version_id == ProductVersion.id)
        .join(ApiProduct, ProductVersion.product_id == ApiProduct.id)
        .where(Registration.application_id == app.id)
    )
    rows, total = await paginate(ctx.session, stmt, query, cols, Registration.id)
    return Page([view(r[0], r[1], r[2]) for r in rows], query.page_number, query.page_size, total)


async def _remove(ctx: Ctx, app: Application, reg: Registration, status_code: int = 204) -> None:
    await ctx.session.delete(reg)
    await approval_changed(ctx, app, reg, reg.status, None)
    audit.record(
        ctx,
        "registration.delete",
        "registration",
        reg.id,
        status_code=status_code,
        changes={"status": {"from": reg.status, "to": None}},
    )
    await ctx.session.commit()
    _wake(ctx)


async def delete(ctx: Ctx, app_id: uuid.UUID, reg_id: uuid.UUID) -> None:
    """The developer withdraws a registration: traffic stops; they may ask again."""
    app, reg = await _own(ctx, app_id, reg_id)
    await _remove(ctx, app, reg)


# ---- admin ----------------------------------------------------------------------------------------------


def _admin_stmt(portal_id: uuid.UUID) -> Any:
    return (
        select(Registration, ProductVersion, ApiProduct, Application, Developer)
        .join(ProductVersion, Registration.product_version_id == ProductVersion.id)
        .join(ApiProduct, ProductVersion.product_id == ApiProduct.id)
        .join(Application, Registration.application_id == Application.id)
        .join(Developer, Application.developer_id == Developer.id)
        .where(Registration.portal_id == portal_id)
    )


async def admin_list(ctx: Ctx, portal_id: uuid.UUID, query: ListQuery, app_id: uuid.UUID | None = None) -> Page:
    if await ctx.session.get(Portal, portal_id) is None:
        raise NotFoundError()
    stmt = _admin_stmt(portal_id)
    if app_id is not None:
        app = await ctx.session.get(Application, app_id)
        if app is None or app.portal_id != portal_id:
            raise NotFoundError()
        stmt = stmt.where(Registration.application_id == app_id)
    cols: dict[str, Any] = {
        "developer_id": Developer.id,
        "developer_name": Developer.full_name,
        "application_name": Application.name,
        "status": Registration.status,
        "created_at": Registration.created_at,
        "updated_at": Registration.updated_at,
    }
    rows, total = await paginate(ctx.session, stmt, query, cols, Registration.id)
    return Page([admin_view(*r) for r in rows], query.page_number, query.page_size, total)


async def _admin_row(
    ctx: Ctx, portal_id: uuid.UUID, reg_id: uuid.UUID, app_id: uuid.UUID | None
) -> tuple[Registration, ProductVersion, ApiProduct, Application, Developer]:
    stmt = _admin_stmt(portal_id).where(Registration.id == reg_id)
    if app_id is not None:
        stmt = stmt.where(Registration.application_id == app_id)
    row = (await ctx.session.execute(stmt)).first()
    if row is None:
        raise NotFoundError()
    return row[0], row[1], row[2], row[3], row[4]


async def admin_get(
    ctx: Ctx, portal_id: uuid.UUID, reg_id: uuid.UUID, app_id: uuid.UUID | None = None
) -> dict[str, Any]:
    return admin_view(*await _admin_row(ctx, portal_id, reg_id, app_id))


async def admin_update(
    ctx: Ctx, portal_id: uuid.UUID, reg_id: uuid.UUID, raw: Any, app_id: uuid.UUID | None = None
) -> dict[str, Any]:
    """PATCH `{status}`: approval reaches gateways within 1 s (config version), the provider from the outbox."""
    reg, version, product, app, dev = await _admin_row(ctx, portal_id, reg_id, app_id)
    body = parse(RegistrationStatusUpdate, raw)
    before = reg.status
    if body.status != before:
        reg.status = body.status
        await approval_changed(ctx, app, reg, before, body.status)
    audit.record(
        ctx,
        "registration.update",
        "registration",
        reg.id,
        changes=audit.diff({"status": before}, {"status": reg.status}),
    )
    await ctx.session.commit()
    _wake(ctx)
    return admin_view(reg, version, product, app, dev)


async def admin_delete(ctx: Ctx, portal_id: uuid.UUID, reg_id: uuid.UUID, app_id: uuid.UUID | None = None) -> None:
    reg, _, _, app, _ = await _admin_row(ctx, portal_id, reg_id, app_id)
    await _remove(ctx, app, reg)
