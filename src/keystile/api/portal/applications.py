"""`/api/v2/applications…` (contracts/portal-api.md §4, §7) and the `Idempotency-Key` wrapper of the Portal API's
creating POSTs (contracts/management-api.md §1.5)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.api import problems
from keystile.api.body import read_json
from keystile.api.management.common import ERRORS, list_query, no_content
from keystile.api.portal.auth import developer_ctx
from keystile.domain.applications import ApplicationCreate, ApplicationUpdate
from keystile.domain.errors import KeystileError
from keystile.services import applications, idempotency
from keystile.services.context import Ctx

__all__ = ["Answer", "idempotent", "request_body", "router"]

router = APIRouter(prefix="/api/v2/applications", tags=["Applications"], responses=ERRORS)


def request_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """`openapi_extra` declaring a JSON request body whose schema is `model` (the domain model that validates it)."""
    schema = model.model_json_schema()
    schema.pop("$defs", None)
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


@dataclass(frozen=True)
class Answer:
    """A handler's success: status, body, `Location`, and the 409 detail to keep instead of a secret-bearing body."""

    status: int
    body: dict[str, Any] | None
    location: str | None = None
    secret: str | None = None


def _response(status: int, body: dict[str, Any] | None, location: str | None, replayed: bool = False) -> Response:
    headers: dict[str, str] = {}
    if location:
        headers["Location"] = location
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    if body is None:
        return Response(status_code=status, headers=headers)
    media = "application/problem+json" if status >= 400 else "application/json"
    return JSONResponse(body, status_code=status, headers=headers, media_type=media)


async def idempotent(request: Request, ctx: Ctx, body: Any, run: Callable[[], Awaitable[Answer]]) -> Response:
    """Run a creating POST under its `Idempotency-Key`, when one is sent (management-api.md §1.5)."""
    key = request.headers.get("idempotency-key")
    if key is None:
        answer = await run()
        return _response(answer.status, answer.body, answer.location)
    rt = ctx.runtime
    claim = await idempotency.begin(
        rt,
        scope=f"{ctx.actor.type}:{ctx.actor.id}",
        method=request.method,
        path=request.url.path,
        key=key,
        body=body,
    )
    if isinstance(claim, idempotency.Replay):
        return _response(claim.status, claim.body, claim.location, replayed=True)
    try:
        answer = await run()
    except KeystileError as exc:
        await ctx.session.rollback()  # the refused change is over; the kept answer must not ride on it
        status = problems.status_for(exc)
        if status < 500:
            kept = problems.to_response(exc)
            headers = kept.headers
            await idempotency.finish(
                rt, claim, status=status, body=json.loads(bytes(kept.body)), location=headers.get("location")
            )
        else:
            await idempotency.release(rt, claim)
        raise
    except BaseException:
        await idempotency.release(rt, claim)
        raise
    await idempotency.finish(
        rt, claim, status=answer.status, body=answer.body, location=answer.location, secret=answer.secret
    )
    return _response(answer.status, answer.body, answer.location)


def refresh_detail(app_id: str) -> str:
    return idempotency.secret_detail(
        "application", app_id, f"rotate it with POST /api/v2/applications/{app_id}/refresh-token"
    )


@router.get("/auth-strategies", name="auth_strategy.list_offered", response_model=None)
async def list_auth_strategies(request: Request, ctx: Ctx = Depends(developer_ctx)) -> Response:
    page = await applications.list_offered_strategies(ctx, list_query(request, applications.STRATEGY_LIST_SPEC))
    return JSONResponse(page.as_dict())


@router.get("", name="application.list", response_model=None)
async def list_applications(request: Request, ctx: Ctx = Depends(developer_ctx)) -> Response:
    page = await applications.list_applications(ctx, list_query(request, applications.LIST_SPEC))
    return JSONResponse(page.as_dict())


@router.post(
    "", name="application.create", status_code=201, response_model=None, openapi_extra=request_body(ApplicationCreate)
)
async def create_application(request: Request, ctx: Ctx = Depends(developer_ctx)) -> Response:
    payload = await read_json(request)

    async def run() -> Answer:
        out = await applications.create(ctx, payload)
        location = f"/api/v2/applications/{out['id']}"
        secret = refresh_detail(out["id"]) if "credentials" in out else None
        return Answer(201, out, location, secret)

    return await idempotent(request, ctx, payload, run)


@router.get("/{applicationId}", name="application.get", response_model=None)
async def get_application(applicationId: uuid.UUID, ctx: Ctx = Depends(developer_ctx)) -> Response:
    return JSONResponse(await applications.get(ctx, applicationId))


@router.patch(
    "/{applicationId}", name="application.update", response_model=None, openapi_extra=request_body(ApplicationUpdate)
)
async def update_application(applicationId: uuid.UUID, request: Request, ctx: Ctx = Depends(developer_ctx)) -> Response:
    out = await applications.update(ctx, applicationId, await read_json(request))
    headers = {"Cache-Control": "no-store"} if "credentials" in out else None
    return JSONResponse(out, headers=headers)


@router.delete("/{applicationId}", name="application.delete", status_code=204, response_model=None)
async def delete_application(applicationId: uuid.UUID, ctx: Ctx = Depends(developer_ctx)) -> Response:
    await applications.delete(ctx, applicationId)
    return no_content()


@router.post("/{applicationId}/refresh-token", name="application.refresh_token", status_code=201, response_model=None)
async def refresh_token(applicationId: uuid.UUID, request: Request, ctx: Ctx = Depends(developer_ctx)) -> Response:
    payload = await read_json(request, required=False)

    async def run() -> Answer:
        out = await applications.refresh_token(ctx, applicationId)
        return Answer(201, out, f"/api/v2/applications/{applicationId}", refresh_detail(str(applicationId)))

    response = await idempotent(request, ctx, payload, run)
    response.headers["Cache-Control"] = "no-store"
    return response
