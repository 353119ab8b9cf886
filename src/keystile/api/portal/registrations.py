"""`/api/v2/applications/{applicationId}/registrations…` (contracts/portal-api.md §6)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.api.body import read_json
from keystile.api.idempotency import Answer, idempotent
from keystile.api.management.common import list_query, no_content
from keystile.api.openapi import request_body
from keystile.api.portal.auth import developer_ctx
from keystile.api.portal.schemas import RegistrationOut, RegistrationPage
from keystile.domain.applications import RegistrationCreate
from keystile.services import registrations
from keystile.services.context import Ctx

__all__ = ["router"]

router = APIRouter(prefix="/api/v2/applications/{applicationId}/registrations", tags=["Registrations"])


@router.get("", name="registration.list", response_model=None, responses={200: {"model": RegistrationPage}})
async def list_registrations(applicationId: uuid.UUID, request: Request, ctx: Ctx = Depends(developer_ctx)) -> Response:
    page = await registrations.list_registrations(ctx, applicationId, list_query(request, registrations.LIST_SPEC))
    return JSONResponse(page.as_dict())


@router.post(
    "",
    name="registration.create",
    status_code=201,
    response_model=None,
    responses={201: {"model": RegistrationOut}},
    openapi_extra=request_body(RegistrationCreate),
)
async def create_registration(
    applicationId: uuid.UUID, request: Request, ctx: Ctx = Depends(developer_ctx)
) -> Response:
    payload = await read_json(request)

    async def run() -> Answer:
        out = await registrations.create(ctx, applicationId, payload)
        return Answer(201, out, f"/api/v2/applications/{applicationId}/registrations/{out['id']}")

    return await idempotent(request, ctx, payload, run)


@router.get(
    "/{registrationId}", name="registration.get", response_model=None, responses={200: {"model": RegistrationOut}}
)
async def get_registration(
    applicationId: uuid.UUID, registrationId: uuid.UUID, ctx: Ctx = Depends(developer_ctx)
) -> Response:
    return JSONResponse(await registrations.get(ctx, applicationId, registrationId))


@router.delete("/{registrationId}", name="registration.delete", status_code=204, response_model=None)
async def delete_registration(
    applicationId: uuid.UUID, registrationId: uuid.UUID, ctx: Ctx = Depends(developer_ctx)
) -> Response:
    await registrations.delete(ctx, applicationId, registrationId)
    return no_content()
