"""The config feed `GET /v2/data-plane/config` and the data-plane tokens and nodes API (gateway.md §2)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.api.auth import admin_actor, admin_ctx, bearer_value, runtime
from keystile.api.body import read_json
from keystile.api.idempotency import Answer, idempotent
from keystile.api.management.common import list_query, no_content
from keystile.api.management.products import inline_body
from keystile.api.management.schemas import Meta
from keystile.domain.errors import AuthenticationError, InvalidParameter, PermissionDeniedError, ValidationError
from keystile.domain.snapshot import Snapshot
from keystile.services import dataplane, idempotency
from keystile.services.context import Actor, Ctx

__all__ = ["data_plane_actor", "router"]

router = APIRouter(prefix="/v2/data-plane", tags=["Data Plane"])

MAX_WAIT = 60


class DataPlaneTokenCreated(BaseModel):
    id: str
    name: str
    token: str
    created_at: str


class DataPlaneTokenOut(BaseModel):
    id: str
    name: str
    created_at: str
    last_used_at: str | None


class DataPlaneTokenPage(BaseModel):
    data: list[DataPlaneTokenOut]
    meta: Meta


class DataPlaneNodeOut(BaseModel):
    id: str
    hostname: str | None
    version: str | None
    config_version: int | None
    last_seen_at: str
    token_id: str | None


class DataPlaneNodePage(BaseModel):
    data: list[DataPlaneNodeOut]
    meta: Meta


async def data_plane_actor(request: Request) -> Actor:
    """A data-plane token (`Bearer kdp_…` or bare); an admin token is authenticated and then refused (403).

    Raises:
        AuthenticationError: missing, unknown or revoked token.
        PermissionDeniedError: a valid admin token.
    """
    token = bearer_value(request)
    if not token:
        raise AuthenticationError()
    if not token.startswith(dataplane.TOKEN_PREFIX):
        await admin_actor(request)  # 401 unless it is a valid admin token
        raise PermissionDeniedError("an admin token cannot read the data-plane config; create a data-plane token")
    return await dataplane.authenticate(runtime(request), token)


def _wait(request: Request) -> int:
    raw = request.query_params.get("wait")
    if raw is None or raw == "":
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(
            [InvalidParameter("wait", "is_integer", "wait must be an integer 0–60", "query")]
        ) from None
    if value < 0:
        raise ValidationError.single("wait", "min", "wait must be 0–60 seconds", "query", minimum=0)
    if value > MAX_WAIT:
        raise ValidationError.single("wait", "max", "wait must be 0–60 seconds", "query", maximum=MAX_WAIT)
    return value


def _etag_version(value: str | None) -> int | None:
    if not value:
        return None
    tag = value.strip()
    tag = tag.removeprefix("W/")
    if len(tag) >= 2 and tag[0] == tag[-1] == '"':
        tag = tag[1:-1]
    return int(tag) if tag.isdigit() else None


def _node_id(request: Request) -> uuid.UUID | None:
    raw = request.headers.get("x-keystile-node-id")
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValidationError.single(
            "X-Keystile-Node-Id", "is_uuid", "X-Keystile-Node-Id must be a UUID", "header"
        ) from None


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "*") and params.replace(" ", "") not in ("q=0", "q=0.0"):
            return True
    return False


@router.get(
    "/config",
    name="data_plane.config",
    response_model=None,
    responses={
        200: {"model": Snapshot, "description": "the snapshot (contracts/gateway.md §3)"},
        304: {"description": "unchanged"},
    },
    openapi_extra={
        "parameters": [
            {
                "name": "wait",
                "in": "query",
                "required": False,
                "description": "with If-None-Match equal to the current ETag: hold up to this many seconds",
                "schema": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT, "default": 0},
            },
            {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
            {
                "name": "X-Keystile-Node-Id",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "format": "uuid"},
            },
            {"name": "X-Keystile-Node-Hostname", "in": "header", "required": False, "schema": {"type": "string"}},
        ]
    },
)
async def get_data_plane_config(request: Request, actor: Actor = Depends(data_plane_actor)) -> Response:
    wait = _wait(request)
    node_id = _node_id(request)
    rt = runtime(request)
    feed = dataplane.hub(rt)
    token_id = uuid.UUID(actor.id) if actor.id else None
    held = _etag_version(request.headers.get("if-none-match"))

    async def seen(version: int | None) -> None:
        if node_id is not None:
            await dataplane.record_node(
                rt,
                node_id,
                hostname=request.headers.get("x-keystile-node-hostname"),
                user_agent=request.headers.get("user-agent"),
                config_version=version,
                token_id=token_id,
            )

    current = await feed.current_version()
    if held is not None and held == current and wait > 0:
        await seen(held)
        outcome = await feed.wait(token_id, current, float(wait))
        if outcome == "revoked":
            raise AuthenticationError()
        if outcome == "timeout":
            return Response(status_code=304, headers={"ETag": f'"{current}"', "Cache-Control": "no-store"})
    elif held is not None and held == current:
        await seen(held)
        return Response(status_code=304, headers={"ETag": f'"{current}"', "Cache-Control": "no-store"})
    snap = await feed.snapshot()
    await seen(snap.version)
    headers = {"ETag": snap.etag, "Cache-Control": "no-store", "Vary": "Accept-Encoding"}
    if _accepts_gzip(request):
        headers["Content-Encoding"] = "gzip"
        return Response(snap.gzipped, media_type="application/json", headers=headers)
    return Response(snap.body, media_type="application/json", headers=headers)


@router.post(
    "/tokens",
    name="data_plane_token.create",
    status_code=201,
    response_model=None,
    responses={201: {"model": DataPlaneTokenCreated}},
    openapi_extra=inline_body(dataplane.DataPlaneTokenCreate),
)
async def create_data_plane_token(request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    body = await read_json(request)

    async def run() -> Answer:
        out = await dataplane.create_token(ctx, body)
        detail = idempotency.secret_detail(
            "data-plane token",
            out["id"],
            f"delete it (DELETE /v2/data-plane/tokens/{out['id']}) and create another to get a new token",
        )
        return Answer(201, out, f"/v2/data-plane/tokens/{out['id']}", secret=detail)

    return await idempotent(request, ctx, body, run)


@router.get(
    "/tokens", name="data_plane_token.list", response_model=None, responses={200: {"model": DataPlaneTokenPage}}
)
async def list_data_plane_tokens(request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    page = await dataplane.list_tokens(ctx, list_query(request, dataplane.TOKEN_LIST_SPEC))
    return JSONResponse(page.as_dict())


@router.delete("/tokens/{tokenId}", name="data_plane_token.delete", status_code=204, response_model=None)
async def delete_data_plane_token(tokenId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)) -> Response:
    await dataplane.delete_token(ctx, tokenId)
    return no_content()


@router.get("/nodes", name="data_plane_node.list", response_model=None, responses={200: {"model": DataPlaneNodePage}})
async def list_data_plane_nodes(request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    page = await dataplane.list_nodes(ctx, list_query(request, dataplane.NODE_LIST_SPEC))
    return JSONResponse(page.as_dict())
