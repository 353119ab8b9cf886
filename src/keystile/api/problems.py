"""problem+json: the one place where domain errors become HTTP answers (management-api.md §1.2)."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.api.tracing import current_trace_id
from keystile.domain import errors as e

__all__ = ["PROBLEM_RESPONSES", "install", "problem"]

log = logging.getLogger(__name__)

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _problem_schema() -> dict[str, Any]:
    item = {
        "type": "object",
        "required": ["field", "rule", "reason"],
        "properties": {
            "field": {"type": "string"},
            "rule": {"type": "string"},
            "reason": {"type": "string"},
            "source": {"type": "string"},
            "choices": {"type": "array", "items": {}},
            "minimum": {"type": "number"},
            "maximum": {"type": "number"},
            "dependents": {"type": "array", "items": {"type": "string"}},
        },
    }
    return {
        "type": "object",
        "required": ["status", "title", "instance", "detail"],
        "properties": {
            "status": {"type": "integer"},
            "title": {"type": "string"},
            "instance": {"type": "string"},
            "detail": {"type": "string"},
            "invalid_parameters": {"type": "array", "items": item},
        },
    }


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": TITLES[code], "content": {"application/problem+json": {"schema": _problem_schema()}}}
    for code in (400, 401, 403, 404, 409, 410, 413, 415, 422, 429, 502, 503, 504)
}

STATUS: dict[type[e.KeystileError], int] = {
    e.ValidationError: 400,
    e.AuthenticationError: 401,
    e.PermissionDeniedError: 403,
    e.NotFoundError: 404,
    e.ConflictError: 409,
    e.GoneError: 410,
    e.PayloadTooLargeError: 413,
    e.UnsupportedMediaTypeError: 415,
    e.IdempotencyMismatchError: 422,
    e.ThrottledError: 429,
}


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "status": status,
        "title": title or TITLES.get(status, "Error"),
        "instance": f"keystile:trace:{current_trace_id()}",
        "detail": detail,
    }
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


def status_for(exc: e.KeystileError) -> int:
    if isinstance(exc, e.ProviderError):
        return 504 if exc.timed_out else 502
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def to_response(exc: e.KeystileError) -> JSONResponse:
    status = status_for(exc)
    if isinstance(exc, e.ValidationError):
        return problem(400, exc.detail, invalid_parameters=[i.as_dict() for i in exc.items])
    if isinstance(exc, e.AuthenticationError):
        return problem(401, exc.detail, title=exc.title, headers={"WWW-Authenticate": 'Bearer realm="keystile"'})
    if isinstance(exc, e.NotFoundError):
        return problem(404, "Not Found")
    if isinstance(exc, e.ConflictError):
        return problem(409, exc.detail, headers={"Location": exc.location} if exc.location else None)
    if isinstance(exc, e.ThrottledError):
        return problem(429, exc.detail, headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, e.ProviderError) and exc.retry_after is not None and exc.retry_after >= 0:
        # the IdP said when to come back (429 or 503 with Retry-After): pass it on with the 502
        return problem(status, exc.detail, headers={"Retry-After": str(math.ceil(exc.retry_after))})
    if status == 500:
        log.error("unexpected domain error", exc_info=exc)
        return problem(500, "An unexpected error occurred; the server log has the details under this trace id")
    return problem(status, exc.detail)


async def _keystile_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, e.KeystileError)
    response = to_response(exc)
    hook = getattr(request.state, "on_error", None)
    if hook is not None and 400 <= response.status_code < 500:
        await hook(response.status_code)
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return problem(404, "Not Found")
    headers = dict(exc.headers or {})
    return problem(exc.status_code, str(exc.detail), headers=headers or None)


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    items: list[dict[str, Any]] = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        source = {"path": "path", "query": "query", "header": "header", "body": "body"}.get(
            str(loc[0]) if loc else "", "body"
        )
        name = ".".join(str(p) for p in loc[1:]) or source
        reason = f"{name} is invalid" if err.get("type") != "uuid_parsing" else f"{name} must be a UUID"
        rule = "is_uuid" if err.get("type") == "uuid_parsing" else "invalid"
        items.append({"field": name, "rule": rule, "reason": reason, "source": source})
    if not items:  # pragma: no cover - pydantic always reports at least one error
        items = [{"field": "body", "rule": "invalid", "reason": "invalid request", "source": "body"}]
    return problem(400, "Invalid request", invalid_parameters=items)


def install(app: FastAPI) -> None:
    app.add_exception_handler(e.KeystileError, _keystile_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
