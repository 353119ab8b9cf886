"""`/v2/application-auth-strategies` (management-api.md §3)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.api.auth import admin_ctx
from keystile.api.body import read_json
from keystile.api.idempotency import Answer, idempotent
from keystile.api.management.common import created, list_query, no_content
from keystile.api.management.schemas import AuthStrategyOut, AuthStrategyPage, VerifyOut
from keystile.api.openapi import request_body
from keystile.domain.strategies import AuthStrategyCreate, AuthStrategyUpdate
from keystile.services import strategies, verification
from keystile.services.context import Ctx

router = APIRouter(prefix="/v2/application-auth-strategies", tags=["App Auth Strategies"])


@router.post(
    "",
    name="auth_strategy.create",
    status_code=201,
    response_model=None,
    responses={201: {"model": AuthStrategyOut}},
    openapi_extra=request_body(AuthStrategyCreate),
)
async def create_app_auth_strategy(request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    body = await read_json(request)

    async def run() -> Answer:
        out = await strategies.create(ctx, body)
        return Answer(201, out, f"/v2/application-auth-strategies/{out['id']}")

    return await idempotent(request, ctx, body, run)


@router.get("", name="auth_strategy.list", response_model=None, responses={200: {"model": AuthStrategyPage}})
async def list_app_auth_strategies(request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    page = await strategies.list_strategies(ctx, list_query(request, strategies.LIST_SPEC))
    return JSONResponse(page.as_dict())


@router.get(
    "/{authStrategyId}", name="auth_strategy.get", response_model=None, responses={200: {"model": AuthStrategyOut}}
)
async def get_app_auth_strategy(authStrategyId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)) -> Response:
    return JSONResponse(await strategies.get(ctx, authStrategyId))


@router.put(
    "/{authStrategyId}",
    name="auth_strategy.replace",
    status_code=201,
    response_model=None,
    responses={201: {"model": AuthStrategyOut}},
    openapi_extra=request_body(AuthStrategyCreate),
)
async def replace_app_auth_strategy(
    authStrategyId: uuid.UUID,
    request: Request,
    ctx: Ctx = Depends(admin_ctx),
) -> Response:
    out = await strategies.replace(ctx, authStrategyId, await read_json(request))
    return created(out, f"/v2/application-auth-strategies/{out['id']}")


@router.patch(
    "/{authStrategyId}",
    name="auth_strategy.update",
    response_model=None,
    responses={200: {"model": AuthStrategyOut}},
    openapi_extra=request_body(AuthStrategyUpdate),
)
async def update_app_auth_strategy(
    authStrategyId: uuid.UUID,
    request: Request,
    ctx: Ctx = Depends(admin_ctx),
) -> Response:
    return JSONResponse(await strategies.update(ctx, authStrategyId, await read_json(request)))


@router.delete("/{authStrategyId}", name="auth_strategy.delete", status_code=204, response_model=None)
async def delete_app_auth_strategy(authStrategyId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)) -> Response:
    await strategies.delete(ctx, authStrategyId)
    return no_content()


@router.post(
    "/{authStrategyId}/verify", name="auth_strategy.verify", response_model=None, responses={200: {"model": VerifyOut}}
)
async def verify_app_auth_strategy(
    authStrategyId: uuid.UUID,
    ctx: Ctx = Depends(admin_ctx),
    trial_registration: bool = False,
) -> Response:
    return JSONResponse(await verification.verify_strategy(ctx, authStrategyId, trial=trial_registration))
