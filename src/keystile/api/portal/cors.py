"""CORS for `/api/v2` (portal-api.md §1): only a portal's `custom_client_domain` (a separately hosted portal
client, as Konnect's) may call the Portal API cross-origin, with credentials. Every other cross-origin caller
gets no CORS headers, so browsers neither send its preflighted writes (the CSRF rule needs
`X-Requested-With`, which forces a preflight) nor let it read answers.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keystile.domain.errors import NotFoundError
from keystile.services import developers
from keystile.services.context import Runtime

__all__ = ["PortalCorsMiddleware"]

PREFIX = "/api/v2/"
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE"
ALLOWED_HEADERS = frozenset({"content-type", "x-requested-with", "authorization", "idempotency-key", "traceparent"})
EXPOSED_HEADERS = "Location, Retry-After, Idempotent-Replayed, X-Keystile-Trace-Id"
MAX_AGE = "600"


class PortalCorsMiddleware:
    """ASGI middleware: answers preflights and marks answers for the portal's `custom_client_domain` only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if not origin:
            await self.app(scope, receive, send)
            return
        allowed = await self._allowed(scope, headers, origin)
        preflight = scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        if preflight:
            await self._preflight(scope, receive, send, headers, origin, allowed)
            return
        if not allowed:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out["Access-Control-Allow-Origin"] = origin
                out["Access-Control-Allow-Credentials"] = "true"
                out["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
                out.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    async def _allowed(scope: Scope, headers: Headers, origin: str) -> bool:
        runtime: Runtime = scope["app"].state.runtime
        try:
            portal = await developers.portal_by_host(runtime, headers.get("host"))
        except NotFoundError:
            return False
        scope.setdefault("state", {})["portal"] = portal  # portal_for_request reuses it
        domain = portal.custom_client_domain
        if not domain:
            return False
        origins = {f"https://{domain}".lower()}
        if runtime.settings.dev_mode:
            origins.add(f"http://{domain}".lower())
        return origin.strip().lower() in origins

    @staticmethod
    async def _preflight(
        scope: Scope, receive: Receive, send: Send, headers: Headers, origin: str, allowed: bool
    ) -> None:
        if not allowed:
            refused = JSONResponse(
                {
                    "status": 403,
                    "title": "Forbidden",
                    "instance": f"keystile:trace:{scope.get('state', {}).get('trace_id', '')}",
                    "detail": "CORS: this origin may not call the Portal API; only the portal's custom_client_domain",
                },
                status_code=403,
                media_type="application/problem+json",
            )
            await refused(scope, receive, send)
            return
        requested = [
            h.strip().lower() for h in headers.get("access-control-request-headers", "").split(",") if h.strip()
        ]
        answer = Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true",
                "Access-Control-Allow-Methods": ALLOWED_METHODS,
                "Access-Control-Allow-Headers": ", ".join(h for h in requested if h in ALLOWED_HEADERS),
                "Access-Control-Max-Age": MAX_AGE,
                "Vary": "Origin",
            },
        )
        await answer(scope, receive, send)
