"""`/v2/portals/{portalId}/developers` (management-api.md §5; statuses: portal-api.md §2.2)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.api.auth import admin_ctx
from keystile.api.body import read_json
from keystile.api.management.common import list_query, no_content
from keystile.api.management.schemas import Meta
from keystile.services import developers
from keystile.services.context import Ctx

__all__ = ["router"]

router = APIRouter(prefix="/v2/portals/{portalId}/developers", tags=["Portal Developers"])


class DeveloperOut(BaseModel):
    id: str
    email: str
    full_name: str
    status: str
    application_count: int
    created_at: str
    updated_at: str


class DeveloperPage(BaseModel):
    data: list[DeveloperOut]
    meta: Meta


_UPDATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["status"],
                    "properties": {"status": {"type": "string", "enum": list(developers.STATUSES)}},
                }
            }
        },
    }
}


@router.get("", name="developer.list", response_model=None, responses={200: {"model": DeveloperPage}})
async def list_portal_developers(portalId: uuid.UUID, request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    page = await developers.admin_list(ctx, portalId, list_query(request, developers.DEVELOPER_LIST_SPEC))
    return JSONResponse(page.as_dict())


@router.get("/{developerId}", name="developer.get", response_model=None, responses={200: {"model": DeveloperOut}})
async def get_developer(portalId: uuid.UUID, developerId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)) -> Response:
    return JSONResponse(await developers.admin_get(ctx, portalId, developerId))


@router.patch(
    "/{developerId}",
    name="developer.update",
    response_model=None,
    responses={200: {"model": DeveloperOut}},
    openapi_extra=_UPDATE_BODY,
)
async def update_developer(
    portalId: uuid.UUID, developerId: uuid.UUID, request: Request, ctx: Ctx = Depends(admin_ctx)
) -> Response:
    return JSONResponse(await developers.admin_update(ctx, portalId, developerId, await read_json(request)))


@router.delete("/{developerId}", name="developer.delete", status_code=204, response_model=None)
async def delete_developer(portalId: uuid.UUID, developerId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)) -> Response:
    await developers.admin_delete(ctx, portalId, developerId)
    return no_content()
