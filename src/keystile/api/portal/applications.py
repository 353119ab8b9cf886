"""`/api/v2/applications…` (contracts/portal-api.md §4, §7)."""

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
from keystile.api.portal.schemas import (
    ApplicationCreatedOut,
    ApplicationOut,
    ApplicationPage,
    ApplicationUpdatedOut,
    ClientCredentialsOut,
    PortalAuthStrategyPage,
)
from keystile.domain.applications import ApplicationCreate, ApplicationUpdate
from keystile.services import applications, idempotency
from keystile.services.context import Ctx

__all__ = ["router"]

router = APIRouter(prefix="/api/v2/applications", tags=["Applications"])


def refresh_detail(app_id: str) -> str:
    return idempotency.secret_detail(
        "application", app_id, f"rotate it with POST /api/v2/applications/{app_id}/refresh-token"
    )


@router.get(
    "/auth-strategies",
    name="auth_strategy.list_offered",
    response_model=None,
    responses={200: {"model": PortalAuthStrategyPage}},
)
async def list_auth_strategies(request: Request, ctx: Ctx = Depends(developer_ctx)) -> Response:
    page = await applications.list_offered_strategies(ctx, list_query(request, applications.STRATEGY_LIST_SPEC))
    return JSONResponse(page.as_dict())


@router.get("", name="application.list", response_model=None, responses={200: {"model": ApplicationPage}})
async def list_applications(request: Request, ctx: Ctx = Depends(developer_ctx)) -> Response:
    page = await applications.list_applications(ctx, list_query(request, applications.LIST_SPEC))
    return JSONResponse(page.as_dict())


@router.post(
    "",
    name="application.create",
    status_code=201,
    response_model=None,
    responses={201: {"model": ApplicationCreatedOut}},
    openapi_extra=request_body(ApplicationCreate),
)
async def create_application(request: Request, ctx: Ctx = Depends(developer_ctx)) -> Response:
    payload = await read_json(request)

    async def run() -> Answer:
        out = await applications.create(ctx, payload)
        location = f"/api/v2/applications/{out['id']}"
        secret = refresh_detail(out["id"]) if "credentials" in out else None
        return Answer(201, out, location, secret)

    return await idempotent(request, ctx, payload, run)


@router.get("/{applicationId}", name="application.get", response_model=None, responses={200: {"model": ApplicationOut}})
async def get_application(applicationId: uuid.UUID, ctx: Ctx = Depends(developer_ctx)) -> Response:
    return JSONResponse(await applications.get(ctx, applicationId))


@router.patch(
    "/{applicationId}",
    name="application.update",
    response_model=None,
    responses={200: {"model": ApplicationUpdatedOut}},
    openapi_extra=request_body(ApplicationUpdate),
)
async def update_application(applicationId: uuid.UUID, request: Request, ctx: Ctx = Depends(developer_ctx)) -> Response:
    out = await applications.update(ctx, applicationId, await read_json(request))
    headers = {"Cache-Control": "no-store"} if "credentials" in out else None
    return JSONResponse(out, headers=headers)


@router.delete("/{applicationId}", name="application.delete", status_code=204, response_model=None)
async def delete_application(applicationId: uuid.UUID, ctx: Ctx = Depends(developer_ctx)) -> Response:
    await applications.delete(ctx, applicationId)
    return no_content()


@router.post(
    "/{applicationId}/refresh-token",
    name="application.refresh_token",
    status_code=201,
    response_model=None,
    responses={201: {"model": ClientCredentialsOut}},
)
async def refresh_token(applicationId: uuid.UUID, request: Request, ctx: Ctx = Depends(developer_ctx)) -> Response:
    payload = await read_json(request, required=False)

    async def run() -> Answer:
        out = await applications.refresh_token(ctx, applicationId)
        return Answer(201, out, f"/api/v2/applications/{applicationId}", refresh_detail(str(applicationId)))

    response = await idempotent(request, ctx, payload, run)
    response.headers["Cache-Control"] = "no-store"
    return response
