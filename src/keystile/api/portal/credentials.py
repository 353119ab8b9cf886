"""`/api/v2/applications/{applicationId}/credentials…` (contracts/portal-api.md §5)."""

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
from keystile.api.portal.schemas import CredentialCreatedOut, CredentialPage
from keystile.domain.applications import CredentialCreate, CredentialUpdate
from keystile.domain.listing import ListSpec
from keystile.services import credentials, idempotency
from keystile.services.context import Ctx

__all__ = ["router"]

router = APIRouter(prefix="/api/v2/applications/{applicationId}/credentials", tags=["Credentials"])
LIST_SPEC = ListSpec(filters={}, sorts=("created_at",))


@router.get("", name="credential.list", response_model=None, responses={200: {"model": CredentialPage}})
async def list_credentials(applicationId: uuid.UUID, request: Request, ctx: Ctx = Depends(developer_ctx)) -> Response:
    page = await credentials.list_credentials(ctx, applicationId, list_query(request, LIST_SPEC))
    return JSONResponse(page.as_dict())


@router.post(
    "",
    name="credential.create",
    status_code=201,
    response_model=None,
    responses={201: {"model": CredentialCreatedOut}},
    openapi_extra=request_body(CredentialCreate, required=False),
)
async def create_credential(applicationId: uuid.UUID, request: Request, ctx: Ctx = Depends(developer_ctx)) -> Response:
    payload = await read_json(request, required=False)

    async def run() -> Answer:
        out = await credentials.create(ctx, applicationId, payload)
        location = f"/api/v2/applications/{applicationId}/credentials/{out['id']}"
        secret = idempotency.secret_detail(
            "credential",
            str(out["id"]),
            f"create another one with POST /api/v2/applications/{applicationId}/credentials",
        )
        return Answer(201, out, location, secret)

    response = await idempotent(request, ctx, payload, run)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.put(
    "/{credentialId}",
    name="credential.update",
    response_model=None,
    response_class=Response,  # 200 with no body (portal-api.md §5): the document must not promise JSON
    response_description="Renamed; the answer has no body (portal-api.md §5)",
    openapi_extra=request_body(CredentialUpdate),
)
async def rename_credential(
    applicationId: uuid.UUID, credentialId: str, request: Request, ctx: Ctx = Depends(developer_ctx)
) -> Response:
    await credentials.rename(ctx, applicationId, credentialId, await read_json(request))
    return Response(status_code=200)


@router.delete("/{credentialId}", name="credential.delete", status_code=204, response_model=None)
async def delete_credential(applicationId: uuid.UUID, credentialId: str, ctx: Ctx = Depends(developer_ctx)) -> Response:
    await credentials.delete(ctx, applicationId, credentialId)
    return no_content()
