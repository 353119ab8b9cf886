"""Helpers shared by the Management API routers."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.api.management.schemas import Problem
from keystile.domain.listing import ListQuery, ListSpec, parse_list_query

__all__ = ["ERRORS", "created", "list_query", "no_content"]

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}} for code in (400, 401, 403, 404, 409)
}


def list_query(request: Request, spec: ListSpec) -> ListQuery:
    return parse_list_query(request.query_params.multi_items(), spec)


def created(body: dict[str, Any], location: str, status: int = 201) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Location": location})


def no_content() -> Response:
    return Response(status_code=204)
