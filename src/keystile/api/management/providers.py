"""`/v2/dcr-providers` (management-api.md §2)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.api.auth import admin_ctx
from keystile.api.body import read_json
from keystile.api.management.common import ERRORS, created, list_query, no_content
from keystile.api.management.schemas import DcrProviderOut, DcrProviderPage, VerifyOut, body_schema
from keystile.services import providers, verification
from keystile.services.context import Ctx

router = APIRouter(prefix="/v2/dcr-providers", tags=["DCR Providers"], responses=ERRORS)


@router.post(
    "",
    name="dcr_provider.create",
    status_code=201,
    response_model=None,
    responses={201: {"model": DcrProviderOut}},
    openapi_extra=body_schema("DcrProviderCreate"),
)
async def create_dcr_provider(request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    out = await providers.create(ctx, await read_json(request))
    return created(out, f"/v2/dcr-providers/{out['id']}")


@router.get("", name="dcr_provider.list", response_model=None, responses={200: {"model": DcrProviderPage}})
async def list_dcr_providers(request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    page = await providers.list_providers(ctx, list_query(request, providers.LIST_SPEC))
    return JSONResponse(page.as_dict())


@router.get(
    "/{dcrProviderId}", name="dcr_provider.get", response_model=None, responses={200: {"model": DcrProviderOut}}
)
async def get_dcr_provider(dcrProviderId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)) -> Response:
    return JSONResponse(await providers.get(ctx, dcrProviderId))


@router.patch(
    "/{dcrProviderId}",
    name="dcr_provider.update",
    response_model=None,
    responses={200: {"model": DcrProviderOut}},
    openapi_extra=body_schema("DcrProviderUpdate"),
)
async def update_dcr_provider(
    dcrProviderId: uuid.UUID,
    request: Request,
    ctx: Ctx = Depends(admin_ctx),
) -> Response:
    return JSONResponse(await providers.update(ctx, dcrProviderId, await read_json(request)))


@router.delete("/{dcrProviderId}", name="dcr_provider.delete", status_code=204, response_model=None)
async def delete_dcr_provider(dcrProviderId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)) -> Response:
    await providers.delete(ctx, dcrProviderId)
    return no_content()


@router.post(
    "/{dcrProviderId}/verify", name="dcr_provider.verify", response_model=None, responses={200: {"model": VerifyOut}}
)
async def verify_dcr_provider(
    dcrProviderId: uuid.UUID,
    ctx: Ctx = Depends(admin_ctx),
    trial_registration: bool = False,
) -> Response:
    return JSONResponse(await verification.verify_provider(ctx, dcrProviderId, trial=trial_registration))
