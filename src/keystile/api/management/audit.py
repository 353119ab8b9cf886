"""`/v2/audit-logs` (management-api.md §6): read-only."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.api.auth import admin_ctx
from keystile.api.management.common import list_query
from keystile.api.management.schemas import AuditLogOut, AuditLogPage
from keystile.services import audit
from keystile.services.context import Ctx

router = APIRouter(prefix="/v2/audit-logs", tags=["Audit Logs"])


@router.get("", name="audit_log.list", response_model=None, responses={200: {"model": AuditLogPage}})
async def list_audit_logs(request: Request, ctx: Ctx = Depends(admin_ctx)) -> Response:
    return JSONResponse((await audit.list_events(ctx, list_query(request, audit.LIST_SPEC))).as_dict())


@router.get("/{auditLogId}", name="audit_log.get", response_model=None, responses={200: {"model": AuditLogOut}})
async def get_audit_log(auditLogId: uuid.UUID, ctx: Ctx = Depends(admin_ctx)) -> Response:
    return JSONResponse(await audit.get(ctx, auditLogId))
