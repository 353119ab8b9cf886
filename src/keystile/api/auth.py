"""Admin authentication for `/v2` (management-api.md §1.1) and the per-request service context."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from keystile.domain.errors import AuthenticationError, PermissionDeniedError
from keystile.services import admin_tokens, audit
from keystile.services.context import Actor, Ctx, Runtime

__all__ = ["admin_ctx", "bearer_value", "client_ip", "runtime"]

DATA_PLANE_PREFIX = "kdp_"
ANONYMOUS = Actor("anonymous")


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def bearer_value(request: Request) -> str | None:
    """The token from `Authorization: Bearer <t>` or a bare `Authorization: <t>` (Konnect's Okta page)."""
    raw = request.headers.get("authorization")
    if raw is None:
        return None
    raw = raw.strip()
    scheme, _, rest = raw.partition(" ")
    if scheme.lower() == "bearer" and rest:
        return rest.strip()
    return raw


async def admin_actor(request: Request, session: AsyncSession | None = None) -> Actor:
    """The admin behind the request's token (looked up in `session` when given).

    Raises:
        AuthenticationError: missing, unknown or revoked token (with a hint for an unexpanded shell variable).
        PermissionDeniedError: a data-plane token.
    """
    token = bearer_value(request)
    if not token:
        raise AuthenticationError()
    if token.startswith(("$", "${")):
        raise AuthenticationError(
            f"Unauthorized: the Authorization header holds the literal text {token[:40]!r}, an unexpanded shell "
            "variable (single quotes keep the shell from expanding it); use double quotes: "
            '-H "Authorization: Bearer $KPAT"'
        )
    if token.startswith(DATA_PLANE_PREFIX):
        raise PermissionDeniedError("a data-plane token is valid only on GET /v2/data-plane/config")
    if session is None:
        return await admin_tokens.authenticate(runtime(request), token)
    return await admin_tokens.authenticate_in(session, token)


async def admin_ctx(request: Request) -> AsyncIterator[Ctx]:
    """Authenticate the admin; yield a unit of work. A refused change (4xx) is audited as a failure."""
    rt = runtime(request)
    trace = getattr(request.state, "trace_id", None)
    ip = client_ip(request)
    readonly = request.method in ("GET", "HEAD")
    # A read-only unit must not write: the token's last use is then recorded in a short session of its own
    # (on SQLite a deferred read transaction cannot become a writer while another one writes).
    actor = await admin_actor(request) if readonly else None
    async with rt.unit(actor or ANONYMOUS, trace, ip, readonly=readonly) as ctx:
        if actor is None:
            ctx.actor = actor = await admin_actor(request, ctx.session)
            # end the authentication read before the change starts: the change's transaction (and anything
            # committed beside it, such as an Idempotency-Key claim) must not depend on it
            await ctx.session.commit()
            _audit_refusals(request, rt, actor, trace, ip)
        yield ctx


def _audit_refusals(request: Request, rt: Runtime, actor: Actor, trace: str | None, ip: str | None) -> None:
    """Record a refused change (4xx after authentication) as a failure event, in its own transaction."""
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        route = request.scope.get("route")
        action = getattr(route, "name", None) or f"{request.method} {request.url.path}"
        resource_type = action.split(".", 1)[0]
        resource_id = next(iter(request.path_params.values()), None)

        async def on_error(status: int) -> None:
            await audit.record_failure(
                rt, actor, action, resource_type, resource_id, status_code=status, trace_id=trace, client_ip=ip
            )

        request.state.on_error = on_error
