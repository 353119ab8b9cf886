"""The developer catalog of a portal (portal-api.md §3): products, published versions with their
`registration_configs` and `gateway_urls`, the OpenAPI document and its operations.

A product is visible in a portal when it lists the portal and has at least one version `published` there;
only published versions are listed; anything else is 404. The admin side of these tables is
`services/catalog.py` and `services/portals.py`; this module only reads them.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import yaml
from sqlalchemy import and_, exists, select

from keystile.domain.applications import credential_type
from keystile.domain.errors import NotFoundError
from keystile.domain.listing import ListQuery, ListSpec, Page
from keystile.domain.time import rfc3339
from keystile.services.applications import strategy_view
from keystile.services.context import Ctx
from keystile.services.developers import PortalInfo
from keystile.store.listing import paginate
from keystile.store.models import (
    ApiProduct,
    Application,
    AuthStrategy,
    DcrProvider,
    Portal,
    PortalProductVersion,
    ProductPortal,
    ProductVersion,
    Registration,
    Specification,
)

__all__ = [
    "PRODUCT_LIST_SPEC",
    "VERSION_LIST_SPEC",
    "get_product",
    "get_version",
    "list_products",
    "list_versions",
    "spec_document",
    "spec_operations",
    "version_applications",
]

PRODUCT_LIST_SPEC = ListSpec(
    filters={"name": "string", "description": "string", "id": "uuid"},
    sorts=("created_at", "updated_at", "name"),
)
VERSION_LIST_SPEC = ListSpec(filters={"name": "string", "id": "uuid"}, sorts=("created_at", "updated_at", "name"))
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _published_in(portal_id: uuid.UUID) -> Any:
    """The condition "this version is published in the portal"."""
    return and_(
        PortalProductVersion.portal_id == portal_id,
        PortalProductVersion.publish_status == "published",
    )


def _visible_products(portal_id: uuid.UUID) -> Any:
    listed = exists().where(ProductPortal.product_id == ApiProduct.id, ProductPortal.portal_id == portal_id)
    published = exists().where(
        ProductVersion.product_id == ApiProduct.id,
        PortalProductVersion.product_version_id == ProductVersion.id,
        _published_in(portal_id),
    )
    return select(ApiProduct).where(listed, published)


async def _version_stats(
    ctx: Ctx, portal_id: uuid.UUID, product_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, dict[str, str] | None]]:
    """{product id: (published version count, latest published version {id, name} or None)}."""
    if not product_ids:
        return {}
    rows = await ctx.session.execute(
        select(ProductVersion.product_id, ProductVersion.id, ProductVersion.name)
        .join(PortalProductVersion, PortalProductVersion.product_version_id == ProductVersion.id)
        .where(ProductVersion.product_id.in_(product_ids), _published_in(portal_id))
        .order_by(ProductVersion.created_at.asc(), ProductVersion.id.asc())
    )
    out: dict[uuid.UUID, tuple[int, dict[str, str] | None]] = {}
    for product_id, version_id, name in rows:
        count, _ = out.get(product_id, (0, None))
        out[product_id] = (count + 1, {"id": str(version_id), "name": name})
    return out


def _product_view(row: ApiProduct, stats: tuple[int, dict[str, str] | None]) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "description": row.description,
        "document_count": 0,
        "version_count": stats[0],
        "latest_version": stats[1],
        "public_labels": dict(row.public_labels or {}),
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }


async def list_products(ctx: Ctx, portal: PortalInfo, query: ListQuery) -> Page:
    """`GET /api/v2/products`."""
    cols: dict[str, Any] = {
        "name": ApiProduct.name,
        "description": ApiProduct.description,
        "id": ApiProduct.id,
        "created_at": ApiProduct.created_at,
        "updated_at": ApiProduct.updated_at,
    }
    rows, total = await paginate(ctx.session, _visible_products(portal.id), query, cols, ApiProduct.id)
    products = [r[0] for r in rows]
    stats = await _version_stats(ctx, portal.id, [p.id for p in products])
    data = [_product_view(p, stats.get(p.id, (0, None))) for p in products]
    return Page(data, query.page_number, query.page_size, total)


async def _product_row(ctx: Ctx, portal: PortalInfo, product_id: uuid.UUID) -> ApiProduct:
    row: ApiProduct | None = (
        await ctx.session.execute(_visible_products(portal.id).where(ApiProduct.id == product_id))
    ).scalar_one_or_none()
    if row is None:
        raise NotFoundError()
    return row


async def get_product(ctx: Ctx, portal: PortalInfo, product_id: uuid.UUID) -> dict[str, Any]:
    """`GET /api/v2/products/{productId}`. Raises NotFoundError when not visible in this portal."""
    row = await _product_row(ctx, portal, product_id)
    stats = await _version_stats(ctx, portal.id, [row.id])
    return _product_view(row, stats.get(row.id, (0, None)))


def _published_versions(portal_id: uuid.UUID, product_id: uuid.UUID) -> Any:
    return (
        select(ProductVersion, PortalProductVersion)
        .join(PortalProductVersion, PortalProductVersion.product_version_id == ProductVersion.id)
        .where(ProductVersion.product_id == product_id, _published_in(portal_id))
    )


async def _registration_configs(
    ctx: Ctx, portal: PortalInfo, ppvs: list[PortalProductVersion]
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """{portal product version id: registration_configs} — one entry per attached strategy (0 or 1)."""
    strategy_ids = {p.auth_strategy_id for p in ppvs if p.auth_strategy_id is not None}
    strategies: dict[uuid.UUID, tuple[AuthStrategy, DcrProvider | None]] = {}
    if strategy_ids:
        rows = await ctx.session.execute(
            select(AuthStrategy, DcrProvider)
            .outerjoin(DcrProvider, DcrProvider.id == AuthStrategy.dcr_provider_id)
            .where(AuthStrategy.id.in_(strategy_ids))
        )
        strategies = {s.id: (s, p) for s, p in rows}
    auto_all = await _portal_auto_approves(ctx, portal)
    out: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for ppv in ppvs:
        found = strategies.get(ppv.auth_strategy_id) if ppv.auth_strategy_id else None
        if found is None:
            out[ppv.id] = []
            continue
        strategy, provider = found
        ctype = credential_type(strategy.strategy_type, strategy.dcr_provider_id)
        managed = bool(provider is not None and provider.dcr_config.get("use_developer_managed_scopes"))
        out[ppv.id] = [
            {
                "id": str(strategy.id),
                "name": strategy.display_name,
                "credential_type": ctype,
                "auth_methods": [] if ctype == "key_auth" else list(strategy.configs.get("auth_methods") or []),
                "available_scopes": list(strategy.configs.get("scopes") or []) if managed else [],
                "registration_enabled": ppv.application_registration_enabled,
                "registration_auto_approve": ppv.auto_approve_registration or auto_all,
            }
        ]
    return out


async def _portal_auto_approves(ctx: Ctx, portal: PortalInfo) -> bool:
    value = (
        await ctx.session.execute(select(Portal.auto_approve_applications).where(Portal.id == portal.id))
    ).scalar_one_or_none()
    return bool(value)


def gateway_urls(ctx: Ctx, version: ProductVersion) -> list[str]:
    """Extension: `KEYSTILE_GATEWAY_PUBLIC_URL` + each route path (empty when the setting is unset)."""
    base = ctx.runtime.settings.gateway_public_url
    service = version.gateway_service or {}
    if not base or not service:
        return []
    base = base.rstrip("/")
    return [f"{base}{path}" for path in service.get("paths") or [] if isinstance(path, str)]


def _version_view(
    ctx: Ctx, version: ProductVersion, ppv: PortalProductVersion, configs: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": str(version.id),
        "name": version.name,
        "deprecated": ppv.deprecated,
        "registration_configs": configs,
        "gateway_urls": gateway_urls(ctx, version),
        "created_at": rfc3339(version.created_at),
        "updated_at": rfc3339(version.updated_at),
    }


async def list_versions(ctx: Ctx, portal: PortalInfo, product_id: uuid.UUID, query: ListQuery) -> Page:
    """`GET /api/v2/products/{productId}/versions`: the versions published in this portal."""
    await _product_row(ctx, portal, product_id)
    cols: dict[str, Any] = {
        "name": ProductVersion.name,
        "id": ProductVersion.id,
        "created_at": ProductVersion.created_at,
        "updated_at": ProductVersion.updated_at,
    }
    rows, total = await paginate(
        ctx.session, _published_versions(portal.id, product_id), query, cols, ProductVersion.id
    )
    configs = await _registration_configs(ctx, portal, [r[1] for r in rows])
    data = [_version_view(ctx, r[0], r[1], configs[r[1].id]) for r in rows]
    return Page(data, query.page_number, query.page_size, total)


async def _version_row(
    ctx: Ctx, portal: PortalInfo, product_id: uuid.UUID, version_id: uuid.UUID
) -> tuple[ProductVersion, PortalProductVersion]:
    await _product_row(ctx, portal, product_id)
    found = (
        await ctx.session.execute(_published_versions(portal.id, product_id).where(ProductVersion.id == version_id))
    ).one_or_none()
    if found is None:
        raise NotFoundError()
    return found[0], found[1]


async def get_version(ctx: Ctx, portal: PortalInfo, product_id: uuid.UUID, version_id: uuid.UUID) -> dict[str, Any]:
    """`GET /api/v2/products/{productId}/versions/{productVersionId}`."""
    version, ppv = await _version_row(ctx, portal, product_id, version_id)
    configs = await _registration_configs(ctx, portal, [ppv])
    return _version_view(ctx, version, ppv, configs[ppv.id])


async def _spec_row(ctx: Ctx, portal: PortalInfo, product_id: uuid.UUID, version_id: uuid.UUID) -> Specification | None:
    await _version_row(ctx, portal, product_id, version_id)
    return (
        await ctx.session.execute(select(Specification).where(Specification.product_version_id == version_id))
    ).scalar_one_or_none()


async def spec_document(
    ctx: Ctx, portal: PortalInfo, product_id: uuid.UUID, version_id: uuid.UUID
) -> dict[str, Any] | None:
    """`{api_type: "openapi", content}`, or None (→ 204) when the version has no specification."""
    row = await _spec_row(ctx, portal, product_id, version_id)
    if row is None:
        return None
    return {"api_type": "openapi", "content": row.content}


def _load(content: str) -> Any:
    """The stored document. It passed the upload validation (JSON or YAML with alias expansion capped,
    services/catalog.py), so the safe loader cannot blow up here."""
    if content.lstrip().startswith(("{", "[")):
        return json.loads(content)
    return yaml.safe_load(content)


def operations(document: Any) -> list[dict[str, Any]]:
    """`[{path, method, operation_id, tags, summary, deprecated}]` in document order."""
    out: list[dict[str, Any]] = []
    paths = document.get("paths") if isinstance(document, dict) else None
    if not isinstance(paths, dict):
        return out
    for path, item in paths.items():
        if not isinstance(item, dict):
            continue
        for method in HTTP_METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            tags = op.get("tags")
            out.append(
                {
                    "path": str(path),
                    "method": method,
                    "operation_id": op.get("operationId") if isinstance(op.get("operationId"), str) else None,
                    "tags": [str(t) for t in tags] if isinstance(tags, list) else [],
                    "summary": op.get("summary") if isinstance(op.get("summary"), str) else None,
                    "deprecated": op.get("deprecated") is True,
                }
            )
    return out


async def spec_operations(
    ctx: Ctx, portal: PortalInfo, product_id: uuid.UUID, version_id: uuid.UUID
) -> dict[str, Any] | None:
    """`{api_type, operations}` from the stored OpenAPI document, or None (→ 204) when there is none."""
    row = await _spec_row(ctx, portal, product_id, version_id)
    if row is None:
        return None
    try:
        document = _load(row.content)
    except (json.JSONDecodeError, yaml.YAMLError):
        document = None  # validated on upload; a row written around the API lists no operations
    return {"api_type": "openapi", "operations": operations(document)}


VERSION_APPS_SPEC = ListSpec(
    filters={"name": "string", "status": "string", "auth_strategy_id": "uuid"},
    sorts=("created_at", "name"),
)


async def version_applications(
    ctx: Ctx,
    portal: PortalInfo,
    developer_id: uuid.UUID,
    product_id: uuid.UUID,
    version_id: uuid.UUID,
    query: ListQuery,
    *,
    unregistered: bool = False,
) -> Page:
    """`GET /api/v2/products/{productId}/versions/{productVersionId}/applications`: the developer's applications
    holding a registration (any status) for this published version, or with `unregistered` those holding none.
    `filter[status]` filters on the registration status."""
    await _version_row(ctx, portal, product_id, version_id)
    joined = and_(Registration.application_id == Application.id, Registration.product_version_id == version_id)
    stmt = (
        select(Application, Registration.id, Registration.status, AuthStrategy, DcrProvider)
        .outerjoin(Registration, joined)
        .join(AuthStrategy, AuthStrategy.id == Application.auth_strategy_id)
        .outerjoin(DcrProvider, DcrProvider.id == AuthStrategy.dcr_provider_id)
        .where(Application.developer_id == developer_id, Application.status == "active")
        .where(Registration.id.is_(None) if unregistered else Registration.id.isnot(None))
    )
    cols = {
        "name": Application.name,
        "status": Registration.status,
        "auth_strategy_id": Application.auth_strategy_id,
        "created_at": Application.created_at,
    }
    rows, total = await paginate(ctx.session, stmt, query, cols, Application.id)
    data = [
        {
            "id": str(app.id),
            "name": app.name,
            "registration_id": str(reg_id) if reg_id else None,
            "registration_status": reg_status,
            "auth_strategy": strategy_view(strategy, provider),
            "created_at": rfc3339(app.created_at),
            "updated_at": rfc3339(app.updated_at),
        }
        for app, reg_id, reg_status, strategy, provider in rows
    ]
    return Page(data, query.page_number, query.page_size, total)
