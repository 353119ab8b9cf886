"""The developer catalog, `/api/v2/products…` (portal-api.md §3). Private portal → 401 without a signed-in
developer; public portal → anonymous."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.api.management.common import list_query
from keystile.api.portal.auth import CatalogCtx, catalog_ctx, developer_ctx, portal_for_request
from keystile.api.portal.schemas import (
    OperationsOut,
    ProductOut,
    ProductPage,
    ProductVersionOut,
    ProductVersionPage,
    SpecOut,
    VersionApplicationPage,
)
from keystile.services import portal_catalog
from keystile.services.context import Ctx

__all__ = ["router"]

router = APIRouter(prefix="/api/v2/products", tags=["Products"])


@router.get("", name="product.list", response_model=None, responses={200: {"model": ProductPage}})
async def list_products(request: Request, cat: CatalogCtx = Depends(catalog_ctx)) -> Response:
    page = await portal_catalog.list_products(
        cat.ctx, cat.portal, list_query(request, portal_catalog.PRODUCT_LIST_SPEC)
    )
    return JSONResponse(page.as_dict())


@router.get("/{productId}", name="product.get", response_model=None, responses={200: {"model": ProductOut}})
async def get_product(productId: uuid.UUID, cat: CatalogCtx = Depends(catalog_ctx)) -> Response:
    return JSONResponse(await portal_catalog.get_product(cat.ctx, cat.portal, productId))


@router.get(
    "/{productId}/versions",
    name="product_version.list",
    response_model=None,
    responses={200: {"model": ProductVersionPage}},
)
async def list_product_versions(
    productId: uuid.UUID, request: Request, cat: CatalogCtx = Depends(catalog_ctx)
) -> Response:
    query = list_query(request, portal_catalog.VERSION_LIST_SPEC)
    return JSONResponse((await portal_catalog.list_versions(cat.ctx, cat.portal, productId, query)).as_dict())


@router.get(
    "/{productId}/versions/{productVersionId}",
    name="product_version.get",
    response_model=None,
    responses={200: {"model": ProductVersionOut}},
)
async def get_product_version(
    productId: uuid.UUID, productVersionId: uuid.UUID, cat: CatalogCtx = Depends(catalog_ctx)
) -> Response:
    return JSONResponse(await portal_catalog.get_version(cat.ctx, cat.portal, productId, productVersionId))


@router.get(
    "/{productId}/versions/{productVersionId}/spec",
    name="product_version.spec",
    response_model=None,
    responses={200: {"model": SpecOut}, 204: {"description": "The version has no specification"}},
)
async def get_product_version_spec(
    productId: uuid.UUID, productVersionId: uuid.UUID, cat: CatalogCtx = Depends(catalog_ctx)
) -> Response:
    body = await portal_catalog.spec_document(cat.ctx, cat.portal, productId, productVersionId)
    return Response(status_code=204) if body is None else JSONResponse(body)


@router.get(
    "/{productId}/versions/{productVersionId}/spec/operations",
    name="product_version.spec_operations",
    response_model=None,
    responses={200: {"model": OperationsOut}, 204: {"description": "The version has no specification"}},
)
async def get_product_version_spec_operations(
    productId: uuid.UUID, productVersionId: uuid.UUID, cat: CatalogCtx = Depends(catalog_ctx)
) -> Response:
    body = await portal_catalog.spec_operations(cat.ctx, cat.portal, productId, productVersionId)
    return Response(status_code=204) if body is None else JSONResponse(body)


@router.get(
    "/{productId}/versions/{productVersionId}/applications",
    name="product_version.applications",
    response_model=None,
    responses={200: {"model": VersionApplicationPage}},
)
async def get_product_version_applications(
    productId: uuid.UUID,
    productVersionId: uuid.UUID,
    request: Request,
    ctx: Ctx = Depends(developer_ctx),
    unregistered: bool = False,
) -> Response:
    """The signed-in developer's applications registered (any status) for this version, or with
    `?unregistered=true` those not registered for it."""
    portal = await portal_for_request(request)
    page = await portal_catalog.version_applications(
        ctx,
        portal,
        request.state.developer.developer_id,
        productId,
        productVersionId,
        list_query(request, portal_catalog.VERSION_APPS_SPEC),
        unregistered=unregistered,
    )
    return JSONResponse(page.as_dict())
