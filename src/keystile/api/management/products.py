"""`/v2/api-products`, product versions and specifications (management-api.md §4)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.api.auth import admin_ctx
from keystile.api.body import MAX_SPEC_BODY, read_json
from keystile.api.idempotency import Answer, idempotent
from keystile.api.management.common import list_query, no_content
from keystile.api.management.schemas import Meta
from keystile.domain.catalog import (
    ProductCreate,
    ProductUpdate,
    SpecificationCreate,
    SpecificationUpdate,
    VersionCreate,
    VersionUpdate,
)
from keystile.services import catalog
from keystile.services.context import Ctx

__all__ = ["inline_body", "router"]

router = APIRouter(prefix="/v2/api-products", tags=["API Products"])


def inline_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` declaring a JSON request body whose schema is `model`, nested models inlined."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}


class PortalRef(BaseModel):
    portal_id: str
    portal_name: str


class ApiProductOut(BaseModel):
    id: str
    name: str
    description: str | None
    labels: dict[str, str]
    public_labels: dict[str, str]
    portal_ids: list[str]
    portals: list[PortalRef]
    version_count: int
    created_at: str
    updated_at: str


class ApiProductPage(BaseModel):
    data: list[ApiProductOut]
    meta: Meta


class StrategyRef(BaseModel):
    id: str
    name: str


class VersionPortalOut(BaseModel):
    portal_id: str
    portal_name: str
    portal_product_version_id: str
    publish_status: str
    deprecated: bool
    application_registration_enabled: bool
    auto_approve_registration: bool
    auth_strategies: list[StrategyRef]


class ApiProductVersionOut(BaseModel):
    id: str
    name: str
    gateway_service: dict[str, Any] | None
    publish_status: str
    deprecated: bool
    labels: dict[str, str]
    portals: list[VersionPortalOut]
    created_at: str
    updated_at: str


class ApiProductVersionPage(BaseModel):
    data: list[ApiProductVersionOut]
    meta: Meta


class SpecificationOut(BaseModel):
    id: str
    name: str
    content: str
    created_at: str
    updated_at: str


class SpecificationPage(BaseModel):
    data: list[SpecificationOut]
    meta: Meta


# ---- products -----------------------------------------------------------------------------------------


@router.post(
    "",
    name="api_product.create",
    status_code=201,
    response_model=None,
    responses={201: {"model": ApiProductOut}},
    openapi_extra=inline_body(ProductCreate),
)
async def create_api_product(request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    body = await read_json(request)

    async def run() -> Answer:
        out = await catalog.create_product(ctx, body)
        return Answer(201, out, f"/v2/api-products/{out['id']}")

    return await idempotent(request, ctx, body, run)


@router.get("", name="api_product.list", response_model=None, responses={200: {"model": ApiProductPage}})
async def list_api_products(request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    page = await catalog.list_products(ctx, list_query(request, catalog.PRODUCT_LIST_SPEC))
    return JSONResponse(page.as_dict())


@router.get("/{apiProductId}", name="api_product.get", response_model=None, responses={200: {"model": ApiProductOut}})
async def get_api_product(apiProductId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)) -> Response:
    return JSONResponse(await catalog.get_product(ctx, apiProductId))


@router.patch(
    "/{apiProductId}",
    name="api_product.update",
    response_model=None,
    responses={200: {"model": ApiProductOut}},
    openapi_extra=inline_body(ProductUpdate),
)
async def update_api_product(apiProductId: uuid.UUID, request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    return JSONResponse(await catalog.update_product(ctx, apiProductId, await read_json(request)))


@router.delete("/{apiProductId}", name="api_product.delete", status_code=204, response_model=None)
async def delete_api_product(apiProductId: uuid.UUID, ctx: Ctx = Depends(admin_ctx), force: bool = False) -> Response:
    await catalog.delete_product(ctx, apiProductId, force=force)
    return no_content()


# ---- versions -----------------------------------------------------------------------------------------


@router.post(
    "/{apiProductId}/product-versions",
    name="api_product_version.create",
    status_code=201,
    response_model=None,
    responses={201: {"model": ApiProductVersionOut}},
    openapi_extra=inline_body(VersionCreate),
)
async def create_api_product_version(
    apiProductId: uuid.UUID, request: Request, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    body = await read_json(request)

    async def run() -> Answer:
        out = await catalog.create_version(ctx, apiProductId, body)
        return Answer(201, out, f"/v2/api-products/{apiProductId}/product-versions/{out['id']}")

    return await idempotent(request, ctx, body, run)


@router.get(
    "/{apiProductId}/product-versions",
    name="api_product_version.list",
    response_model=None,
    responses={200: {"model": ApiProductVersionPage}},
)
async def list_api_product_versions(
    apiProductId: uuid.UUID, request: Request, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    page = await catalog.list_versions(ctx, apiProductId, list_query(request, catalog.VERSION_LIST_SPEC))
    return JSONResponse(page.as_dict())


@router.get(
    "/{apiProductId}/product-versions/{productVersionId}",
    name="api_product_version.get",
    response_model=None,
    responses={200: {"model": ApiProductVersionOut}},
)
async def get_api_product_version(
    apiProductId: uuid.UUID, productVersionId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    return JSONResponse(await catalog.get_version(ctx, apiProductId, productVersionId))


@router.patch(
    "/{apiProductId}/product-versions/{productVersionId}",
    name="api_product_version.update",
    response_model=None,
    responses={200: {"model": ApiProductVersionOut}},
    openapi_extra=inline_body(VersionUpdate),
)
async def update_api_product_version(
    apiProductId: uuid.UUID, productVersionId: uuid.UUID, request: Request, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    return JSONResponse(await catalog.update_version(ctx, apiProductId, productVersionId, await read_json(request)))


@router.delete(
    "/{apiProductId}/product-versions/{productVersionId}",
    name="api_product_version.delete",
    status_code=204,
    response_model=None,
)
async def delete_api_product_version(
    apiProductId: uuid.UUID, productVersionId: uuid.UUID, ctx: Ctx = Depends(admin_ctx), force: bool = False
) -> Response:
    await catalog.delete_version(ctx, apiProductId, productVersionId, force=force)
    return no_content()


# ---- specifications -----------------------------------------------------------------------------------

_SPECS = "/{apiProductId}/product-versions/{productVersionId}/specifications"


@router.post(
    _SPECS,
    name="api_product_version_specification.create",
    status_code=201,
    response_model=None,
    responses={201: {"model": SpecificationOut}},
    openapi_extra=inline_body(SpecificationCreate),
)
async def create_api_product_version_spec(
    apiProductId: uuid.UUID, productVersionId: uuid.UUID, request: Request, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    raw = await read_json(request, max_bytes=MAX_SPEC_BODY)

    async def run() -> Answer:
        out = await catalog.create_specification(ctx, apiProductId, productVersionId, raw)
        base = f"/v2/api-products/{apiProductId}/product-versions/{productVersionId}/specifications"
        return Answer(201, out, f"{base}/{out['id']}")

    return await idempotent(request, ctx, raw, run)


@router.get(
    _SPECS,
    name="api_product_version_specification.list",
    response_model=None,
    responses={200: {"model": SpecificationPage}},
)
async def list_api_product_version_specs(
    apiProductId: uuid.UUID, productVersionId: uuid.UUID, request: Request, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    query = list_query(request, catalog.SPEC_LIST_SPEC)
    page = await catalog.list_specifications(ctx, apiProductId, productVersionId, query)
    return JSONResponse(page.as_dict())


@router.get(
    _SPECS + "/{specificationId}",
    name="api_product_version_specification.get",
    response_model=None,
    responses={200: {"model": SpecificationOut}},
)
async def get_api_product_version_spec(
    apiProductId: uuid.UUID, productVersionId: uuid.UUID, specificationId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    return JSONResponse(await catalog.get_specification(ctx, apiProductId, productVersionId, specificationId))


@router.patch(
    _SPECS + "/{specificationId}",
    name="api_product_version_specification.update",
    response_model=None,
    responses={200: {"model": SpecificationOut}},
    openapi_extra=inline_body(SpecificationUpdate),
)
async def update_api_product_version_spec(
    apiProductId: uuid.UUID,
    productVersionId: uuid.UUID,
    specificationId: uuid.UUID,
    request: Request,
    ctx: Ctx = Depends(admin_ctx),
) -> Response:
    raw = await read_json(request, max_bytes=MAX_SPEC_BODY)
    return JSONResponse(await catalog.update_specification(ctx, apiProductId, productVersionId, specificationId, raw))


@router.delete(
    _SPECS + "/{specificationId}",
    name="api_product_version_specification.delete",
    status_code=204,
    response_model=None,
)
async def delete_api_product_version_spec(
    apiProductId: uuid.UUID, productVersionId: uuid.UUID, specificationId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    await catalog.delete_specification(ctx, apiProductId, productVersionId, specificationId)
    return no_content()
