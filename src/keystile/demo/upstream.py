"""The demo's sample upstream: an echo API that answers every request with what it received, including the
`X-Application-*` identity headers the gateway adds. `python -m keystile.demo.upstream --port P`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["OPENAPI", "create_upstream"]

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Echo API", "version": "1.0.0", "description": "Answers with what it received."},
    "paths": {
        "/hello": {
            "get": {
                "operationId": "hello",
                "summary": "Say hello and show who called",
                "tags": ["echo"],
                "parameters": [{"name": "name", "in": "query", "schema": {"type": "string"}}],
                "responses": {
                    "200": {
                        "description": "the request as the API saw it",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Echo"}}},
                    }
                },
            }
        },
        "/items": {
            "post": {
                "operationId": "createItem",
                "summary": "Echo a JSON body",
                "tags": ["echo"],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {
                    "200": {
                        "description": "the request as the API saw it",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Echo"}}},
                    }
                },
            }
        },
    },
    "components": {
        "schemas": {
            "Echo": {
                "type": "object",
                "properties": {
                    "method": {"type": "string"},
                    "path": {"type": "string"},
                    "query": {"type": "object"},
                    "application": {"type": "object"},
                    "body": {},
                },
            }
        }
    },
}


async def _echo(request: Request) -> JSONResponse:
    raw = await request.body()
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", "replace")
    application = {k.lower(): v for k, v in request.headers.items() if k.lower().startswith("x-application-")}
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "application": application,
            "authorization": "Bearer …" if request.headers.get("authorization", "").startswith("Bearer ") else None,
            "body": body,
        }
    )


def create_upstream() -> Starlette:
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", _echo, methods=methods)])


def main() -> None:  # pragma: no cover - run as a subprocess by the demo
    import uvicorn

    parser = argparse.ArgumentParser(description="keystile demo echo upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_upstream(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":  # pragma: no cover
    main()
