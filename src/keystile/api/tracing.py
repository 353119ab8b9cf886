"""Trace ids: taken from an incoming W3C `traceparent`, else generated; echoed as `X-Keystile-Trace-Id`,
used as the problem `instance`, and put on every log line of the request."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keystile.logs import trace_id_var

__all__ = ["TraceMiddleware", "current_trace_id"]

log = logging.getLogger("keystile.access")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def current_trace_id() -> str:
    return trace_id_var.get() or ""


class TraceMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace = None
        for name, value in scope.get("headers", []):
            if name == b"traceparent":
                match = _TRACEPARENT.match(value.decode("latin-1").strip().lower())
                if match and match.group(1) != "0" * 32:
                    trace = match.group(1)
        trace = trace or secrets.token_hex(16)
        token = trace_id_var.set(trace)
        scope.setdefault("state", {})["trace_id"] = trace
        started = time.perf_counter()
        status = 500
        status_sent = False

        async def send_with_trace(message: Message) -> None:
            nonlocal status, status_sent
            if message["type"] == "http.response.start":
                status = message["status"]
                status_sent = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-keystile-trace-id", trace.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_trace)
        except Exception:
            log.exception("unexpected error")
            if status_sent is False:
                body = json.dumps(
                    {
                        "status": 500,
                        "title": "Internal Server Error",
                        "instance": f"keystile:trace:{trace}",
                        "detail": "An unexpected error occurred; the server log has the details under this trace id",
                    }
                ).encode()
                await send_with_trace(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
            else:
                raise
        finally:
            log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            trace_id_var.reset(token)
