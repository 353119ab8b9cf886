"""Helpers shared by the Management API routers."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.domain.listing import ListQuery, ListSpec, parse_list_query

__all__ = ["created", "list_query", "no_content"]


def list_query(request: Request, spec: ListSpec) -> ListQuery:
    return parse_list_query(request.query_params.multi_items(), spec)


def created(body: dict[str, Any], location: str, status: int = 201) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Location": location})


def no_content() -> Response:
    return Response(status_code=204)
