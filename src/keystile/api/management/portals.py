"""`/v2/portals` and `/v2/portals/{portalId}/product-versions` (management-api.md §5)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.api.auth import admin_ctx
from keystile.api.body import read_json
from keystile.api.idempotency import Answer, idempotent
from keystile.api.management.common import created, list_query, no_content
from keystile.api.management.products import StrategyRef, inline_body
from keystile.api.management.schemas import Meta
from keystile.domain.catalog import (
    PortalCreate,
    PortalProductVersionCreate,
    PortalProductVersionReplace,
    PortalProductVersionUpdate,
    PortalUpdate,
)
from keystile.services import portals
from keystile.services.context import Ctx

__all__ = ["router"]

router = APIRouter(prefix="/v2/portals", tags=["Portals"])


class PortalOut(BaseModel):
    id: str
    name: str
    display_name: str
    description: str | None
    default_domain: str
    is_public: bool
    rbac_enabled: bool
    auto_approve_applications: bool
    auto_approve_developers: bool
    custom_domain: str | None
    custom_client_domain: str | None
    default_application_auth_strategy_id: str | None
    labels: dict[str, str]
    revoke_on_developer_revoke: bool
    application_count: int
    developer_count: int
    published_product_count: int
    created_at: str
    updated_at: str


class PortalPage(BaseModel):
    data: list[PortalOut]
    meta: Meta


class PortalProductVersionOut(BaseModel):
    id: str
    product_version_id: str
    publish_status: str
    application_registration_enabled: bool
    auto_approve_registration: bool
    deprecated: bool
    auth_strategies: list[StrategyRef]
    created_at: str
    updated_at: str


class PortalProductVersionPage(BaseModel):
    data: list[PortalProductVersionOut]
    meta: Meta


@router.post(
    "",
    name="portal.create",
    status_code=201,
    response_model=None,
    responses={201: {"model": PortalOut}},
    openapi_extra=inline_body(PortalCreate),
)
async def create_portal(request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    body = await read_json(request)

    async def run() -> Answer:
        out = await portals.create(ctx, body)
        return Answer(201, out, f"/v2/portals/{out['id']}")

    return await idempotent(request, ctx, body, run)


@router.get("", name="portal.list", response_model=None, responses={200: {"model": PortalPage}})
async def list_portals(request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    page = await portals.list_portals(ctx, list_query(request, portals.LIST_SPEC))
    return JSONResponse(page.as_dict())


@router.get("/{portalId}", name="portal.get", response_model=None, responses={200: {"model": PortalOut}})
async def get_portal(portalId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)) -> Response:
    return JSONResponse(await portals.get(ctx, portalId))


@router.patch(
    "/{portalId}",
    name="portal.update",
    response_model=None,
    responses={200: {"model": PortalOut}},
    openapi_extra=inline_body(PortalUpdate),
)
async def update_portal(portalId: uuid.UUID, request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    return JSONResponse(await portals.update(ctx, portalId, await read_json(request)))


@router.delete("/{portalId}", name="portal.delete", status_code=204, response_model=None)
async def delete_portal(portalId: uuid.UUID, ctx: Ctx = Depends(admin_ctx), force: bool = False) -> Response:
    await portals.delete(ctx, portalId, force=force)
    return no_content()


@router.get(
    "/{portalId}/product-versions",
    name="portal_product_version.list",
    response_model=None,
    responses={200: {"model": PortalProductVersionPage}},
)
async def list_portal_product_versions(
    portalId: uuid.UUID, request: Request, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    page = await portals.list_product_versions(ctx, portalId, list_query(request, portals.PPV_LIST_SPEC))
    return JSONResponse(page.as_dict())


@router.post(
    "/{portalId}/product-versions",
    name="portal_product_version.create",
    status_code=201,
    response_model=None,
    responses={201: {"model": PortalProductVersionOut}},
    openapi_extra=inline_body(PortalProductVersionCreate),
)
async def create_portal_product_version(
    portalId: uuid.UUID, request: Request, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    body = await read_json(request)

    async def run() -> Answer:
        out = await portals.create_product_version(ctx, portalId, body)
        return Answer(201, out, f"/v2/portals/{portalId}/product-versions/{out['product_version_id']}")

    return await idempotent(request, ctx, body, run)


@router.get(
    "/{portalId}/product-versions/{productVersionId}",
    name="portal_product_version.get",
    response_model=None,
    responses={200: {"model": PortalProductVersionOut}},
)
async def get_portal_product_version(
    portalId: uuid.UUID, productVersionId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    return JSONResponse(await portals.get_product_version(ctx, portalId, productVersionId))


@router.put(
    "/{portalId}/product-versions/{productVersionId}",
    name="portal_product_version.replace",
    response_model=None,
    responses={200: {"model": PortalProductVersionOut}, 201: {"model": PortalProductVersionOut}},
    openapi_extra=inline_body(PortalProductVersionReplace),
)
async def replace_portal_product_version(
    portalId: uuid.UUID, productVersionId: uuid.UUID, request: Request, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    out, was_created = await portals.replace_product_version(ctx, portalId, productVersionId, await read_json(request))
    if was_created:
        return created(out, f"/v2/portals/{portalId}/product-versions/{productVersionId}")
    return JSONResponse(out)


@router.patch(
    "/{portalId}/product-versions/{productVersionId}",
    name="portal_product_version.update",
    response_model=None,
    responses={200: {"model": PortalProductVersionOut}},
    openapi_extra=inline_body(PortalProductVersionUpdate),
)
async def update_portal_product_version(
    portalId: uuid.UUID, productVersionId: uuid.UUID, request: Request, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    return JSONResponse(await portals.update_product_version(ctx, portalId, productVersionId, await read_json(request)))


@router.delete(
    "/{portalId}/product-versions/{productVersionId}",
    name="portal_product_version.delete",
    status_code=204,
    response_model=None,
)
async def delete_portal_product_version(
    portalId: uuid.UUID, productVersionId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    await portals.delete_product_version(ctx, portalId, productVersionId)
    return no_content()
