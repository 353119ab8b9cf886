"""API products, product versions and specifications (management-api.md §4)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select

from keystile.domain.catalog import (
    ProductCreate,
    ProductUpdate,
    SpecificationCreate,
    SpecificationUpdate,
    VersionCreate,
    VersionUpdate,
    konnect_service_problem,
    null_problems,
    overlap,
    read_specification,
)
from keystile.domain.errors import ConflictError, InvalidParameter, NotFoundError
from keystile.domain.listing import ListQuery, ListSpec, Page
from keystile.domain.time import rfc3339
from keystile.domain.validation import parse
from keystile.services import audit, installation, registrations
from keystile.services.context import Ctx
from keystile.store.listing import paginate
from keystile.store.models import (
    ApiProduct,
    AuthStrategy,
    Portal,
    PortalProductVersion,
    ProductPortal,
    ProductVersion,
    Registration,
    Specification,
)

__all__ = [
    "PRODUCT_LIST_SPEC",
    "SPEC_LIST_SPEC",
    "VERSION_LIST_SPEC",
    "create_product",
    "create_specification",
    "create_version",
    "delete_product",
    "delete_specification",
    "delete_version",
    "get_product",
    "get_specification",
    "get_version",
    "get_version_row",
    "list_products",
    "list_specifications",
    "list_versions",
    "update_product",
    "update_specification",
    "update_version",
    "version_portals",
]

PRODUCT_LIST_SPEC = ListSpec(
    filters={"id": "uuid", "name": "string", "description": "string"},
    sorts=("created_at", "updated_at", "name"),
)
VERSION_LIST_SPEC = ListSpec(filters={"id": "uuid", "name": "string"}, sorts=("created_at", "updated_at", "name"))
SPEC_LIST_SPEC = ListSpec(filters={"name": "string"}, sorts=("created_at", "updated_at", "name"))


def _merge_labels(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(current)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


# ---- products -----------------------------------------------------------------------------------------


async def _product_portals(ctx: Ctx, product_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, str]]]:
    ids = list(product_ids)
    out: dict[uuid.UUID, list[dict[str, str]]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = await ctx.session.execute(
        select(ProductPortal.product_id, Portal.id, Portal.name)
        .join(Portal, Portal.id == ProductPortal.portal_id)
        .where(ProductPortal.product_id.in_(ids))
        .order_by(Portal.created_at, Portal.id)
    )
    for product_id, portal_id, name in rows:
        out[product_id].append({"portal_id": str(portal_id), "portal_name": name})
    return out


async def _version_counts(ctx: Ctx, product_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    ids = list(product_ids)
    if not ids:
        return {}
    rows = await ctx.session.execute(
        select(ProductVersion.product_id, func.count())
        .where(ProductVersion.product_id.in_(ids))
        .group_by(ProductVersion.product_id)
    )
    return {pid: int(n) for pid, n in rows}


def _product_view(row: ApiProduct, portals: list[dict[str, str]], version_count: int) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "description": row.description,
        "labels": dict(row.labels),
        "public_labels": dict(row.public_labels),
        "portal_ids": [p["portal_id"] for p in portals],
        "portals": portals,
        "version_count": version_count,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }


async def _product_out(ctx: Ctx, row: ApiProduct) -> dict[str, Any]:
    portals = await _product_portals(ctx, [row.id])
    counts = await _version_counts(ctx, [row.id])
    return _product_view(row, portals[row.id], counts.get(row.id, 0))


async def _missing_portals(ctx: Ctx, raw: Any) -> list[InvalidParameter]:
    if not isinstance(raw, dict) or not isinstance(raw.get("portal_ids"), list):
        return []
    wanted: list[uuid.UUID] = []
    for item in raw["portal_ids"]:
        if not isinstance(item, str):
            continue
        try:
            wanted.append(uuid.UUID(item))
        except ValueError:
            continue
    if not wanted:
        return []
    found = set((await ctx.session.execute(select(Portal.id).where(Portal.id.in_(wanted)))).scalars())
    return [
        InvalidParameter(
            "portal_ids", "missing_reference", f"no portal has the id {pid}; create it first or fix the id"
        )
        for pid in wanted
        if pid not in found
    ]


async def get_product_row(ctx: Ctx, product_id: uuid.UUID) -> ApiProduct:
    row = await ctx.session.get(ApiProduct, product_id)
    if row is None:
        raise NotFoundError()
    return row


async def create_product(ctx: Ctx, raw: Any) -> dict[str, Any]:
    body = parse(ProductCreate, raw, extra_items=await _missing_portals(ctx, raw))
    row = ApiProduct(
        id=uuid.uuid4(),
        name=body.name,
        description=body.description,
        labels=body.labels or {},
        public_labels=body.public_labels or {},
    )
    ctx.session.add(row)
    await ctx.session.flush()
    for portal_id in body.portal_ids or []:
        ctx.session.add(ProductPortal(product_id=row.id, portal_id=portal_id))
    audit.record(
        ctx,
        "api_product.create",
        "api_product",
        row.id,
        status_code=201,
        changes=audit.diff({}, {"name": row.name, "portal_ids": [str(p) for p in body.portal_ids or []]}),
    )
    await ctx.session.flush()
    out = await _product_out(ctx, row)  # read before the commit: no transaction stays open after it
    await ctx.session.commit()
    return out


async def get_product(ctx: Ctx, product_id: uuid.UUID) -> dict[str, Any]:
    return await _product_out(ctx, await get_product_row(ctx, product_id))


async def list_products(ctx: Ctx, query: ListQuery) -> Page:
    cols: dict[str, Any] = {
        "id": ApiProduct.id,
        "name": ApiProduct.name,
        "description": ApiProduct.description,
        "created_at": ApiProduct.created_at,
        "updated_at": ApiProduct.updated_at,
    }
    rows, total = await paginate(ctx.session, select(ApiProduct), query, cols, ApiProduct.id)
    products = [r[0] for r in rows]
    portals = await _product_portals(ctx, [p.id for p in products])
    counts = await _version_counts(ctx, [p.id for p in products])
    data = [_product_view(p, portals[p.id], counts.get(p.id, 0)) for p in products]
    return Page(data, query.page_number, query.page_size, total)


async def _registrations_in_portals(ctx: Ctx, product_id: uuid.UUID, portal_ids: set[uuid.UUID]) -> dict[str, int]:
    """portal name → registrations of this product's versions held there."""
    if not portal_ids:
        return {}
    rows = await ctx.session.execute(
        select(Portal.name, func.count(Registration.id))
        .join(Portal, Portal.id == Registration.portal_id)
        .join(ProductVersion, ProductVersion.id == Registration.product_version_id)
        .where(ProductVersion.product_id == product_id, Registration.portal_id.in_(portal_ids))
        .group_by(Portal.name)
    )
    return {name: int(n) for name, n in rows}


async def update_product(ctx: Ctx, product_id: uuid.UUID, raw: Any) -> dict[str, Any]:
    row = await get_product_row(ctx, product_id)
    problems = null_problems(
        raw, {"name": "is_string", "labels": "is_object", "public_labels": "is_object", "portal_ids": "is_array"}
    )
    body = parse(ProductUpdate, raw, extra_items=[*problems, *await _missing_portals(ctx, raw)])
    sent = body.model_fields_set
    before = {"name": row.name, "description": row.description, "labels": dict(row.labels)}
    if "name" in sent and body.name is not None:
        row.name = body.name
    if "description" in sent:
        row.description = body.description
    if "labels" in sent and body.labels is not None:
        row.labels = _merge_labels(row.labels, body.labels)
    if "public_labels" in sent and body.public_labels is not None:
        row.public_labels = _merge_labels(row.public_labels, body.public_labels)
    changes = audit.diff(before, {"name": row.name, "description": row.description, "labels": dict(row.labels)})
    if "portal_ids" in sent and body.portal_ids is not None:
        current = set(
            (await ctx.session.execute(select(ProductPortal.portal_id).where(ProductPortal.product_id == row.id)))
            .scalars()
            .all()
        )
        wanted = set(body.portal_ids)
        removed = current - wanted
        held = await _registrations_in_portals(ctx, row.id, removed)
        if held:
            names = ", ".join(f"{name!r} ({n} registrations)" for name, n in sorted(held.items()))
            raise ConflictError(
                f"API product {row.name!r} has registrations in portal {names}; revoke or delete them before "
                "removing the portal from portal_ids"
            )
        if removed:
            await ctx.session.execute(
                sql_delete(ProductPortal).where(
                    ProductPortal.product_id == row.id, ProductPortal.portal_id.in_(removed)
                )
            )
            # its versions are no longer offered in those portals
            version_ids = select(ProductVersion.id).where(ProductVersion.product_id == row.id)
            await ctx.session.execute(
                sql_delete(PortalProductVersion).where(
                    PortalProductVersion.portal_id.in_(removed),
                    PortalProductVersion.product_version_id.in_(version_ids),
                )
            )
            await installation.bump_config_version(ctx)
        for portal_id in wanted - current:
            ctx.session.add(ProductPortal(product_id=row.id, portal_id=portal_id))
        if removed or wanted - current:
            changes["portal_ids"] = {"from": sorted(map(str, current)), "to": sorted(map(str, wanted))}
    audit.record(ctx, "api_product.update", "api_product", row.id, changes=changes)
    await ctx.session.commit()
    return await _product_out(ctx, row)


async def _registration_count(ctx: Ctx, version_ids: list[uuid.UUID]) -> int:
    if not version_ids:
        return 0
    stmt = select(func.count()).select_from(Registration).where(Registration.product_version_id.in_(version_ids))
    return int((await ctx.session.execute(stmt)).scalar_one())


async def _delete_registrations(ctx: Ctx, version_ids: list[uuid.UUID]) -> None:
    """Delete the registrations on these versions; providers that act on `remove_registration` hear of each
    approved one from the outbox (the HTTP bridge's event hooks)."""
    await registrations.announce_bulk_removal(ctx, version_ids)
    await ctx.session.execute(sql_delete(Registration).where(Registration.product_version_id.in_(version_ids)))


async def delete_product(ctx: Ctx, product_id: uuid.UUID, *, force: bool = False) -> None:
    row = await get_product_row(ctx, product_id)
    version_ids = list(
        (await ctx.session.execute(select(ProductVersion.id).where(ProductVersion.product_id == row.id))).scalars()
    )
    held = await _registration_count(ctx, version_ids)
    if held and not force:
        raise ConflictError(
            f"API product {row.name!r} has {held} application registrations on its versions; delete them first or "
            "repeat with ?force=true to delete them too"
        )
    if version_ids:
        await _delete_registrations(ctx, version_ids)
        await ctx.session.execute(
            sql_delete(PortalProductVersion).where(PortalProductVersion.product_version_id.in_(version_ids))
        )
        await ctx.session.execute(sql_delete(Specification).where(Specification.product_version_id.in_(version_ids)))
        await ctx.session.execute(sql_delete(ProductVersion).where(ProductVersion.id.in_(version_ids)))
    await ctx.session.execute(sql_delete(ProductPortal).where(ProductPortal.product_id == row.id))
    await ctx.session.delete(row)
    await installation.bump_config_version(ctx)
    audit.record(
        ctx,
        "api_product.delete",
        "api_product",
        row.id,
        status_code=204,
        changes={"registrations_deleted": held} if held else None,
    )
    await ctx.session.commit()


# ---- versions -----------------------------------------------------------------------------------------


async def version_portals(ctx: Ctx, version_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """product version id → its portal product versions as `APIProductVersionPortal` items."""
    ids = list(version_ids)
    out: dict[uuid.UUID, list[dict[str, Any]]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = await ctx.session.execute(
        select(PortalProductVersion, Portal.name, AuthStrategy.name)
        .join(Portal, Portal.id == PortalProductVersion.portal_id)
        .outerjoin(AuthStrategy, AuthStrategy.id == PortalProductVersion.auth_strategy_id)
        .where(PortalProductVersion.product_version_id.in_(ids))
        .order_by(PortalProductVersion.created_at, PortalProductVersion.id)
    )
    for ppv, portal_name, strategy_name in rows:
        strategies = (
            [{"id": str(ppv.auth_strategy_id), "name": strategy_name}] if ppv.auth_strategy_id is not None else []
        )
        out[ppv.product_version_id].append(
            {
                "portal_id": str(ppv.portal_id),
                "portal_name": portal_name,
                "portal_product_version_id": str(ppv.id),
                "publish_status": ppv.publish_status,
                "deprecated": ppv.deprecated,
                "application_registration_enabled": ppv.application_registration_enabled,
                "auto_approve_registration": ppv.auto_approve_registration,
                "auth_strategies": strategies,
            }
        )
    return out


def _version_view(row: ProductVersion, portals: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "gateway_service": dict(row.gateway_service) if row.gateway_service is not None else None,
        # Konnect's deprecated summary fields: published/deprecated in at least one portal
        "publish_status": "published" if any(p["publish_status"] == "published" for p in portals) else "unpublished",
        "deprecated": any(p["deprecated"] for p in portals),
        "labels": dict(row.labels),
        "portals": portals,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }


async def _version_out(ctx: Ctx, row: ProductVersion) -> dict[str, Any]:
    portals = await version_portals(ctx, [row.id])
    return _version_view(row, portals[row.id])


async def get_version_row(ctx: Ctx, product_id: uuid.UUID, version_id: uuid.UUID) -> ProductVersion:
    row = await ctx.session.get(ProductVersion, version_id)
    if row is None or row.product_id != product_id:
        raise NotFoundError()
    return row


def _prepare_version(raw: Any) -> tuple[Any, list[InvalidParameter]]:
    if isinstance(raw, dict) and "gateway_service" in raw:
        service, items = konnect_service_problem(raw["gateway_service"])
        if items:
            raw = {**raw, "gateway_service": service}
        return raw, items
    return raw, []


async def _name_taken(ctx: Ctx, product_id: uuid.UUID, name: str, exclude: uuid.UUID | None = None) -> bool:
    stmt = select(ProductVersion.id).where(ProductVersion.product_id == product_id, ProductVersion.name == name)
    if exclude is not None:
        stmt = stmt.where(ProductVersion.id != exclude)
    return (await ctx.session.execute(stmt.limit(1))).first() is not None


async def _check_overlap(ctx: Ctx, service: dict[str, Any], exclude: uuid.UUID | None) -> None:
    stmt = (
        select(ProductVersion, ApiProduct.name)
        .join(ApiProduct, ApiProduct.id == ProductVersion.product_id)
        .where(ProductVersion.gateway_service.isnot(None))
        .order_by(ProductVersion.created_at, ProductVersion.id)
    )
    for other, product_name in await ctx.session.execute(stmt):
        if other.id == exclude or not other.gateway_service:
            continue
        clash = overlap(service, other.gateway_service)
        if clash is not None:
            raise ConflictError(
                f"gateway_service overlaps product {product_name!r} version {other.name!r} ({other.id}) on {clash}; "
                "use distinct paths or methods"
            )


async def _apply_portal_flags(ctx: Ctx, row: ProductVersion, body: VersionCreate) -> bool:
    sent = body.model_fields_set
    values: dict[str, Any] = {}
    if "publish_status" in sent and body.publish_status is not None:
        values["publish_status"] = body.publish_status
    if "deprecated" in sent and body.deprecated is not None:
        values["deprecated"] = body.deprecated
    if not values:
        return False
    ppvs = (
        (
            await ctx.session.execute(
                select(PortalProductVersion).where(PortalProductVersion.product_version_id == row.id)
            )
        )
        .scalars()
        .all()
    )
    for ppv in ppvs:
        for key, value in values.items():
            setattr(ppv, key, value)
    return bool(ppvs)


async def create_version(ctx: Ctx, product_id: uuid.UUID, raw: Any) -> dict[str, Any]:
    product = await get_product_row(ctx, product_id)
    raw, extra = _prepare_version(raw)
    body = parse(VersionCreate, raw, extra_items=extra)
    if await _name_taken(ctx, product.id, body.name):
        raise ConflictError(f"API product {product.name!r} already has a version named {body.name!r}")
    service = body.gateway_service.model_dump() if body.gateway_service is not None else None
    if service is not None:
        await _check_overlap(ctx, service, None)
    row = ProductVersion(
        id=uuid.uuid4(), product_id=product.id, name=body.name, labels=body.labels or {}, gateway_service=service
    )
    ctx.session.add(row)
    await ctx.session.flush()
    if service is not None:
        await installation.bump_config_version(ctx)
    audit.record(
        ctx,
        "api_product_version.create",
        "api_product_version",
        row.id,
        status_code=201,
        changes=audit.diff({}, {"name": row.name, "product_id": str(product.id), "gateway_service": service}),
    )
    await ctx.session.flush()
    out = await _version_out(ctx, row)
    await ctx.session.commit()
    return out


async def get_version(ctx: Ctx, product_id: uuid.UUID, version_id: uuid.UUID) -> dict[str, Any]:
    return await _version_out(ctx, await get_version_row(ctx, product_id, version_id))


async def list_versions(ctx: Ctx, product_id: uuid.UUID, query: ListQuery) -> Page:
    await get_product_row(ctx, product_id)
    cols: dict[str, Any] = {
        "id": ProductVersion.id,
        "name": ProductVersion.name,
        "created_at": ProductVersion.created_at,
        "updated_at": ProductVersion.updated_at,
    }
    stmt = select(ProductVersion).where(ProductVersion.product_id == product_id)
    rows, total = await paginate(ctx.session, stmt, query, cols, ProductVersion.id)
    versions = [r[0] for r in rows]
    portals = await version_portals(ctx, [v.id for v in versions])
    return Page([_version_view(v, portals[v.id]) for v in versions], query.page_number, query.page_size, total)


async def update_version(ctx: Ctx, product_id: uuid.UUID, version_id: uuid.UUID, raw: Any) -> dict[str, Any]:
    row = await get_version_row(ctx, product_id, version_id)
    raw, extra = _prepare_version(raw)
    extra += null_problems(
        raw, {"name": "is_string", "labels": "is_object", "publish_status": "enum", "deprecated": "is_boolean"}
    )
    body = parse(VersionUpdate, raw, extra_items=extra)
    sent = body.model_fields_set
    before = {"name": row.name, "labels": dict(row.labels), "gateway_service": row.gateway_service}
    if "name" in sent and body.name is not None and body.name != row.name:
        if await _name_taken(ctx, product_id, body.name, exclude=row.id):
            product = await get_product_row(ctx, product_id)
            raise ConflictError(f"API product {product.name!r} already has a version named {body.name!r}")
        row.name = body.name
    if "labels" in sent and body.labels is not None:
        row.labels = _merge_labels(row.labels, body.labels)
    traffic = False
    if "gateway_service" in sent:
        service = body.gateway_service.model_dump() if body.gateway_service is not None else None
        if service is not None:
            await _check_overlap(ctx, service, row.id)
        traffic = service != row.gateway_service
        row.gateway_service = service
    if await _apply_portal_flags(ctx, row, body):
        traffic = True
    if traffic:
        await installation.bump_config_version(ctx)
    after = {"name": row.name, "labels": dict(row.labels), "gateway_service": row.gateway_service}
    changes = audit.diff(before, after)
    for key in ("publish_status", "deprecated"):
        if key in sent and getattr(body, key) is not None:
            changes[f"portals.{key}"] = {"from": None, "to": getattr(body, key)}
    audit.record(ctx, "api_product_version.update", "api_product_version", row.id, changes=changes)
    await ctx.session.commit()
    return await _version_out(ctx, row)


async def delete_version(ctx: Ctx, product_id: uuid.UUID, version_id: uuid.UUID, *, force: bool = False) -> None:
    row = await get_version_row(ctx, product_id, version_id)
    held = await _registration_count(ctx, [row.id])
    if held and not force:
        raise ConflictError(
            f"product version {row.name!r} has {held} application registrations; delete them first or repeat with "
            "?force=true to delete them too"
        )
    await _delete_registrations(ctx, [row.id])
    await ctx.session.execute(sql_delete(PortalProductVersion).where(PortalProductVersion.product_version_id == row.id))
    await ctx.session.execute(sql_delete(Specification).where(Specification.product_version_id == row.id))
    await ctx.session.delete(row)
    await installation.bump_config_version(ctx)
    audit.record(
        ctx,
        "api_product_version.delete",
        "api_product_version",
        row.id,
        status_code=204,
        changes={"registrations_deleted": held} if held else None,
    )
    await ctx.session.commit()


# ---- specifications -----------------------------------------------------------------------------------


def _spec_view(row: Specification) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "content": row.content,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }


def _content_problems(raw: Any) -> tuple[str | None, list[InvalidParameter]]:
    if isinstance(raw, dict) and isinstance(raw.get("content"), str) and raw["content"]:
        text, problems = read_specification(raw["content"])
        return text, problems
    return None, []


async def get_specification_row(
    ctx: Ctx, product_id: uuid.UUID, version_id: uuid.UUID, spec_id: uuid.UUID
) -> Specification:
    await get_version_row(ctx, product_id, version_id)
    row = await ctx.session.get(Specification, spec_id)
    if row is None or row.product_version_id != version_id:
        raise NotFoundError()
    return row


async def create_specification(ctx: Ctx, product_id: uuid.UUID, version_id: uuid.UUID, raw: Any) -> dict[str, Any]:
    version = await get_version_row(ctx, product_id, version_id)
    text, problems = _content_problems(raw)
    body = parse(SpecificationCreate, raw, extra_items=problems)
    existing = (
        await ctx.session.execute(select(Specification.id).where(Specification.product_version_id == version.id))
    ).scalar_one_or_none()
    if existing is not None:
        raise ConflictError(
            f"product version {version.name!r} already has a specification ({existing}); PATCH or delete it",
            location=f"/v2/api-products/{product_id}/product-versions/{version_id}/specifications/{existing}",
        )
    row = Specification(id=uuid.uuid4(), product_version_id=version.id, name=body.name, content=text or body.content)
    ctx.session.add(row)
    audit.record(
        ctx,
        "api_product_version_specification.create",
        "api_product_version_specification",
        row.id,
        status_code=201,
        changes={"name": {"from": None, "to": row.name}},
    )
    await ctx.session.commit()
    return _spec_view(row)


async def list_specifications(ctx: Ctx, product_id: uuid.UUID, version_id: uuid.UUID, query: ListQuery) -> Page:
    await get_version_row(ctx, product_id, version_id)
    cols: dict[str, Any] = {
        "name": Specification.name,
        "created_at": Specification.created_at,
        "updated_at": Specification.updated_at,
    }
    stmt = select(Specification).where(Specification.product_version_id == version_id)
    rows, total = await paginate(ctx.session, stmt, query, cols, Specification.id)
    return Page([_spec_view(r[0]) for r in rows], query.page_number, query.page_size, total)


async def get_specification(
    ctx: Ctx, product_id: uuid.UUID, version_id: uuid.UUID, spec_id: uuid.UUID
) -> dict[str, Any]:
    return _spec_view(await get_specification_row(ctx, product_id, version_id, spec_id))


async def update_specification(
    ctx: Ctx, product_id: uuid.UUID, version_id: uuid.UUID, spec_id: uuid.UUID, raw: Any
) -> dict[str, Any]:
    row = await get_specification_row(ctx, product_id, version_id, spec_id)
    text, problems = _content_problems(raw)
    problems += null_problems(raw, {"name": "is_string", "content": "is_string"})
    body = parse(SpecificationUpdate, raw, extra_items=problems)
    sent = body.model_fields_set
    changes: dict[str, Any] = {}
    if "name" in sent and body.name is not None and body.name != row.name:
        changes["name"] = {"from": row.name, "to": body.name}
        row.name = body.name
    if "content" in sent and text is not None and text != row.content:
        changes["content"] = {"from": f"{len(row.content)} characters", "to": f"{len(text)} characters"}
        row.content = text
    audit.record(
        ctx, "api_product_version_specification.update", "api_product_version_specification", row.id, changes=changes
    )
    await ctx.session.commit()
    return _spec_view(row)


async def delete_specification(ctx: Ctx, product_id: uuid.UUID, version_id: uuid.UUID, spec_id: uuid.UUID) -> None:
    row = await get_specification_row(ctx, product_id, version_id, spec_id)
    await ctx.session.delete(row)
    audit.record(
        ctx, "api_product_version_specification.delete", "api_product_version_specification", row.id, status_code=204
    )
    await ctx.session.commit()
