"""`/v2/dcr-providers` (management-api.md §2)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.api.auth import admin_ctx
from keystile.api.body import read_json
from keystile.api.idempotency import Answer, idempotent
from keystile.api.management.common import list_query, no_content
from keystile.api.management.schemas import DcrProviderOut, DcrProviderPage, VerifyOut
from keystile.api.openapi import request_body
from keystile.domain.providers import DcrProviderCreate, DcrProviderUpdate
from keystile.services import providers, verification
from keystile.services.context import Ctx

router = APIRouter(prefix="/v2/dcr-providers", tags=["DCR Providers"])


@router.post(
    "",
    name="dcr_provider.create",
    status_code=201,
    response_model=None,
    responses={201: {"model": DcrProviderOut}},
    openapi_extra=request_body(DcrProviderCreate),
)
async def create_dcr_provider(request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    body = await read_json(request)

    async def run() -> Answer:
        out = await providers.create(ctx, body)
        return Answer(201, out, f"/v2/dcr-providers/{out['id']}")

    return await idempotent(request, ctx, body, run)


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
    openapi_extra=request_body(DcrProviderUpdate),
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
