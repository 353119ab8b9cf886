"""The composition root of the control plane: `create_app(settings)` builds everything; nothing at import."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import exc as sa_exc
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from keystile import __version__
from keystile.api import problems
from keystile.api.management import applications as admin_applications
from keystile.api.management import audit, idp_operations, portals, products, providers, strategies
from keystile.api.management import dataplane as dataplane_api
from keystile.api.management import developers as admin_developers
from keystile.api.portal import applications as portal_applications
from keystile.api.portal import catalog as portal_catalog
from keystile.api.portal import credentials as portal_credentials
from keystile.api.portal import developer as portal_developer
from keystile.api.portal import registrations as portal_registrations
from keystile.api.portal.cors import PortalCorsMiddleware
from keystile.api.tracing import TraceMiddleware
from keystile.services import housekeeping, installation, outbox
from keystile.services.context import Runtime
from keystile.settings import Settings
from keystile.store.errors import database_unavailable
from keystile.web import rendering as web_rendering
from keystile.web import routes as web_routes

log = logging.getLogger("keystile.app")

RETRY_AFTER_DB = 2

__all__ = ["create_app"]


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> FastAPI:
    """The control-plane ASGI app. The database must be migrated (`keystile migrate`) before it starts.

    Args:
        settings: this process's settings.
        runtime: a prebuilt runtime (tests share one); built from `settings` when omitted and then owned.
    """
    owned = runtime is None
    rt = runtime or Runtime.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await installation.ensure(rt)
        # The outbox runner (and its start-up sweep) runs in every process that owns its runtime; a runtime
        # passed in (tests) has its outbox driven by the caller unless it asks for the runner.
        runner = outbox.Runner(rt) if owned or rt.extras.get("start_outbox") else None
        if runner is not None:
            await runner.start()
        cleanup = asyncio.create_task(housekeeping.run_loop(rt)) if owned else None
        try:
            yield
        finally:
            if cleanup is not None:
                cleanup.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await cleanup
            if runner is not None:
                await runner.stop()
            if owned:
                await rt.close()

    app = FastAPI(
        title="keystile API",
        version=__version__,
        description=(
            "keystile's Konnect-compatible APIs: the Management API (`/v2`: DCR providers, auth strategies, API "
            "products, portals, developers, applications, registrations, audit log, data plane) and the Portal "
            "API (`/api/v2`)."
        ),
        openapi_url="/v2/openapi.json",
        docs_url="/v2/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = rt
    app.state.settings = settings
    problems.install(app)
    app.add_exception_handler(sa_exc.DBAPIError, _database_error)
    app.add_exception_handler(sa_exc.TimeoutError, _database_error)
    api_routers = (
        providers.router,
        strategies.router,
        audit.router,
        products.router,
        portals.router,
        dataplane_api.router,
        admin_developers.router,
        admin_applications.router,
        idp_operations.router,
        portal_developer.router,
        portal_catalog.router,
        portal_applications.router,
        portal_credentials.router,
        portal_registrations.router,
    )
    for router in api_routers:
        # every JSON route may answer these problem+json errors; documenting them once keeps the served
        # OpenAPI document true for clients and for the property-based tests
        app.include_router(router, responses=problems.PROBLEM_RESPONSES)
    for router in web_routes.routers:
        app.include_router(router)
    app.add_middleware(PortalCorsMiddleware)
    app.add_middleware(TraceMiddleware)
    return app


async def _database_error(request: Request, exc: Exception) -> Response:
    """A database that cannot be used right now answers 503 with `Retry-After` (problem+json on the APIs, a page on
    the pages); any other driver error is a 500 with the trace id. The request's transaction was rolled back."""
    unavailable = database_unavailable(exc)
    if unavailable:
        log.warning("database unavailable during %s %s: %s", request.method, request.url.path, type(exc).__name__)
        status, title = 503, "Service Unavailable"
        detail = "The database is unavailable for a moment; nothing was changed. Retry in a few seconds."
        headers = {"Retry-After": str(RETRY_AFTER_DB)}
    else:
        log.error("database error during %s %s", request.method, request.url.path, exc_info=exc)
        status, title = 500, "Internal Server Error"
        detail = "An unexpected error occurred; the server log has the details under this trace id"
        headers = {}
    path = request.url.path
    if path.startswith(("/v2/", "/api/")):
        return problems.problem(status, detail, title=title, headers=headers or None)
    try:
        response: Response = web_rendering.error_page(
            request, status, "Temporarily unavailable" if unavailable else "Something went wrong", detail
        )
    except Exception:  # the page chrome itself needs something that failed: plain words then
        response = PlainTextResponse(detail, status_code=status)
    response.headers.update(headers)
    return response
