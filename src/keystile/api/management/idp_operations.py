"""`/v2/idp-operations` (contracts/management-api.md §7): pending IdP work, retry, give up."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.api.auth import admin_ctx
from keystile.api.management.common import list_query, no_content
from keystile.api.management.schemas import IdpOperationOut, IdpOperationPage
from keystile.services import outbox
from keystile.services.context import Ctx

__all__ = ["router"]

router = APIRouter(prefix="/v2/idp-operations", tags=["IdP Operations"])


@router.get("", name="idp_operation.list", response_model=None, responses={200: {"model": IdpOperationPage}})
async def list_operations(request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    page = await outbox.list_operations(ctx, list_query(request, outbox.LIST_SPEC))
    return JSONResponse(page.as_dict())


@router.get(
    "/{operationId}", name="idp_operation.get", response_model=None, responses={200: {"model": IdpOperationOut}}
)
async def get_operation(operationId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)) -> Response:
    return JSONResponse(await outbox.get(ctx, operationId))


@router.post(
    "/{operationId}/retry",
    name="idp_operation.retry",
    status_code=202,
    response_model=None,
    responses={202: {"model": IdpOperationOut}},
)
async def retry_operation(operationId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)) -> Response:
    return JSONResponse(await outbox.retry(ctx, operationId), status_code=202)


@router.delete("/{operationId}", name="idp_operation.give_up", status_code=204, response_model=None)
async def give_up_operation(operationId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)) -> Response:
    await outbox.give_up(ctx, operationId)
    return no_content()
