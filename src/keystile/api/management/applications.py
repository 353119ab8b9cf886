"""Admin side of applications and registrations (contracts/management-api.md §5):
`/v2/portals/{portalId}/applications…`, `/v2/applications/{applicationId}`,
`/v2/portals/{portalId}/application-registrations…`, `…/applications/{applicationId}/registrations…`."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.api.auth import admin_ctx
from keystile.api.body import read_json
from keystile.api.management.common import list_query, no_content
from keystile.api.management.schemas import (
    AdminApplicationOut,
    AdminApplicationPage,
    AdminRegistrationOut,
    AdminRegistrationPage,
)
from keystile.api.openapi import request_body
from keystile.domain.applications import RegistrationStatusUpdate
from keystile.services import applications, registrations
from keystile.services.context import Ctx

__all__ = ["router"]

router = APIRouter(tags=["Portal Applications"])

APPS = "/v2/portals/{portalId}/applications"
REGS = "/v2/portals/{portalId}/application-registrations"


@router.get(APPS, name="application.list", response_model=None, responses={200: {"model": AdminApplicationPage}})
async def list_applications(portalId: uuid.UUID, request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    page = await applications.admin_list(ctx, portalId, list_query(request, applications.ADMIN_LIST_SPEC))
    return JSONResponse(page.as_dict())


@router.get(
    APPS + "/{applicationId}",
    name="application.get",
    response_model=None,
    responses={200: {"model": AdminApplicationOut}},
)
async def get_application(portalId: uuid.UUID, applicationId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)) -> Response:
    return JSONResponse(await applications.admin_get(ctx, applicationId, portalId))


@router.delete(APPS + "/{applicationId}", name="application.delete", status_code=204, response_model=None)
async def delete_application(portalId: uuid.UUID, applicationId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)) -> Response:
    await applications.admin_delete(ctx, portalId, applicationId)
    return no_content()


@router.get(
    "/v2/applications/{applicationId}",
    name="application.get_any",
    response_model=None,
    responses={200: {"model": AdminApplicationOut}},
)
async def get_any_application(applicationId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)) -> Response:
    return JSONResponse(await applications.admin_get(ctx, applicationId))


@router.get(
    APPS + "/{applicationId}/registrations",
    name="registration.list_for_application",
    response_model=None,
    responses={200: {"model": AdminRegistrationPage}},
)
async def list_app_registrations(
    portalId: uuid.UUID, applicationId: uuid.UUID, request: Request, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    query = list_query(request, registrations.ADMIN_APP_LIST_SPEC)
    return JSONResponse((await registrations.admin_list(ctx, portalId, query, applicationId)).as_dict())


@router.get(
    APPS + "/{applicationId}/registrations/{registrationId}",
    name="registration.get",
    response_model=None,
    responses={200: {"model": AdminRegistrationOut}},
)
async def get_app_registration(
    portalId: uuid.UUID, applicationId: uuid.UUID, registrationId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    return JSONResponse(await registrations.admin_get(ctx, portalId, registrationId, applicationId))


@router.patch(
    APPS + "/{applicationId}/registrations/{registrationId}",
    name="registration.update",
    response_model=None,
    openapi_extra=request_body(RegistrationStatusUpdate),
    responses={200: {"model": AdminRegistrationOut}},
)
async def update_app_registration(
    portalId: uuid.UUID,
    applicationId: uuid.UUID,
    registrationId: uuid.UUID,
    request: Request,
    ctx: Ctx = Depends(admin_ctx),
) -> Response:
    body = await read_json(request)
    return JSONResponse(await registrations.admin_update(ctx, portalId, registrationId, body, applicationId))


@router.delete(
    APPS + "/{applicationId}/registrations/{registrationId}",
    name="registration.delete",
    status_code=204,
    response_model=None,
)
async def delete_app_registration(
    portalId: uuid.UUID, applicationId: uuid.UUID, registrationId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    await registrations.admin_delete(ctx, portalId, registrationId, applicationId)
    return no_content()


@router.get(REGS, name="registration.list", response_model=None, responses={200: {"model": AdminRegistrationPage}})
async def list_registrations(portalId: uuid.UUID, request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    query = list_query(request, registrations.ADMIN_LIST_SPEC)
    return JSONResponse((await registrations.admin_list(ctx, portalId, query)).as_dict())


@router.get(
    REGS + "/{registrationId}",
    name="registration.get_in_portal",
    response_model=None,
    responses={200: {"model": AdminRegistrationOut}},
)
async def get_registration(portalId: uuid.UUID, registrationId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)) -> Response:
    return JSONResponse(await registrations.admin_get(ctx, portalId, registrationId))


@router.patch(
    REGS + "/{registrationId}",
    name="registration.update_in_portal",
    response_model=None,
    openapi_extra=request_body(RegistrationStatusUpdate),
    responses={200: {"model": AdminRegistrationOut}},
)
async def update_registration(
    portalId: uuid.UUID, registrationId: uuid.UUID, request: Request, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    body = await read_json(request)
    return JSONResponse(await registrations.admin_update(ctx, portalId, registrationId, body))


@router.delete(REGS + "/{registrationId}", name="registration.delete_in_portal", status_code=204, response_model=None)
async def delete_registration(
    portalId: uuid.UUID, registrationId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    await registrations.admin_delete(ctx, portalId, registrationId)
    return no_content()
