"""Portal API (`/api/v2`) request dependencies: which portal, which developer, CSRF (portal-api.md §1).

Names other routers use (all FastAPI dependencies, `Depends(...)`):

- `portal_for_request(request) -> PortalInfo`: the portal whose `custom_domain` is the request's `Host`,
  else the portal named `default` (404 when neither exists). Also on `request.state.portal`.
- `signed_in_developer(request) -> SignedIn`: an authenticated, `approved` developer of that portal
  (`developer_id`, `portal_id`, `email`, `full_name`). Access token from the `portalaccesstoken` cookie or
  `Authorization: Bearer <token>`. 403 on a public portal, 401 otherwise; a cookie-authenticated
  POST/PUT/PATCH/DELETE must pass the CSRF rule (`X-Requested-With` non-empty and `Origin`, when present, the
  portal's own origin or `custom_client_domain`) → else 403 "CSRF check failed: …". Also on
  `request.state.developer`.
- `developer_ctx(request) -> Ctx`: the same checks, then a unit of work whose `actor` is
  `Actor("developer", str(developer_id), full_name)`; the ids: `request.state.developer.developer_id`,
  `request.state.developer.portal_id` (or depend on `signed_in_developer` as well: FastAPI evaluates it once
  per request). A refused change (4xx) is audited as a failure with the route `name` as the action.
- `catalog_ctx(request) -> CatalogCtx`: `ctx`, `portal`, `developer` (None when anonymous) for catalog reads;
  a private portal requires a signed-in developer (401), a public one is anonymous.
- `anonymous_ctx(request) -> Ctx`: a unit of work for the account endpoints before sign-in; refuses POSTs
  whose `Origin` is foreign (403).

Tests: `tests/portal_helpers.py` creates approved developers with live sessions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request

from keystile.api.auth import bearer_value, client_ip, runtime
from keystile.domain.errors import AuthenticationError, PermissionDeniedError
from keystile.services import audit, developers
from keystile.services.context import Actor, Ctx
from keystile.services.developers import PortalInfo, SignedIn

__all__ = [
    "ACCESS_COOKIE",
    "REFRESH_COOKIE",
    "CatalogCtx",
    "anonymous_ctx",
    "catalog_ctx",
    "check_origin",
    "developer_ctx",
    "portal_for_request",
    "signed_in_developer",
]

ACCESS_COOKIE = "portalaccesstoken"
REFRESH_COOKIE = "portalrefreshtoken"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def portal_for_request(request: Request) -> PortalInfo:
    """The portal picked by `Host` (its `custom_domain`), else the `default` portal.

    Raises:
        NotFoundError: no such portal (the default portal is created at first start).
    """
    cached = getattr(request.state, "portal", None)
    if isinstance(cached, PortalInfo):
        return cached
    portal = await developers.portal_by_host(runtime(request), request.headers.get("host"))
    request.state.portal = portal
    return portal


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def allowed_origins(request: Request, portal: PortalInfo) -> set[str]:
    """The portal's own origins and its `custom_client_domain`."""
    settings = runtime(request).settings
    out = {_origin_of(settings.public_url)}
    host = request.headers.get("host")
    if host:
        # the origin the browser used to reach this portal (TLS may end at a proxy in front of keystile)
        out.update(
            {f"https://{host}".lower(), f"http://{host}".lower()} if settings.dev_mode else {f"https://{host}".lower()}
        )
    for domain in (portal.custom_domain, portal.custom_client_domain):
        if domain:
            out.add(f"https://{domain}".lower())
            if settings.dev_mode:
                out.add(f"http://{domain}".lower())
    return out


def check_origin(request: Request, portal: PortalInfo) -> None:
    """Refuse a request whose `Origin` header is present and foreign.

    Raises:
        PermissionDeniedError: "CSRF check failed: …".
    """
    origin = request.headers.get("origin")
    if origin is None:
        return
    if origin.strip().lower() not in allowed_origins(request, portal):
        raise PermissionDeniedError(
            f"CSRF check failed: Origin {origin[:200]!r} is neither this portal nor its custom_client_domain"
        )


def check_csrf(request: Request, portal: PortalInfo) -> None:
    """The rule for cookie-authenticated writes (portal-api.md §1, Extension: CSRF)."""
    if not request.headers.get("x-requested-with", "").strip():
        raise PermissionDeniedError(
            "CSRF check failed: a cookie-authenticated write must carry a non-empty X-Requested-With header"
        )
    check_origin(request, portal)


def access_token(request: Request) -> tuple[str | None, str | None]:
    """(token, how): the access token from `Authorization: Bearer` (how = "bearer") or the cookie ("cookie")."""
    header = request.headers.get("authorization")
    if header:
        token = bearer_value(request)
        return (token or None), "bearer"
    cookie = request.cookies.get(ACCESS_COOKIE)
    return (cookie or None), ("cookie" if cookie else None)


async def signed_in_developer(request: Request) -> SignedIn:
    """An approved developer of this portal.

    Raises:
        PermissionDeniedError: public portal, or a cookie-authenticated write failing the CSRF check.
        AuthenticationError: no token, or one that names no approved developer of this portal.
    """
    cached = getattr(request.state, "developer", None)
    if isinstance(cached, SignedIn):
        return cached
    portal = await portal_for_request(request)
    developers.require_accounts(portal)
    token, how = access_token(request)
    if not token:
        raise AuthenticationError()
    if how == "cookie" and request.method in WRITE_METHODS:
        check_csrf(request, portal)
    who = await developers.session_for_token(runtime(request), portal, token)
    request.state.developer = who
    return who


def _failure_hook(request: Request, actor: Actor, trace: str | None, ip: str | None) -> None:
    if request.method not in WRITE_METHODS:
        return
    route = request.scope.get("route")
    action = getattr(route, "name", None) or f"{request.method} {request.url.path}"
    resource_type = action.split(".", 1)[0]
    resource_id = next(iter(request.path_params.values()), None)
    rt = runtime(request)

    async def on_error(status: int) -> None:
        await audit.record_failure(
            rt, actor, action, resource_type, resource_id, status_code=status, trace_id=trace, client_ip=ip
        )

    request.state.on_error = on_error


async def developer_ctx(request: Request) -> AsyncIterator[Ctx]:
    """A unit of work acting as the signed-in developer (see the module docstring)."""
    who = await signed_in_developer(request)
    actor = developers.developer_actor(who)
    trace = getattr(request.state, "trace_id", None)
    ip = client_ip(request)
    _failure_hook(request, actor, trace, ip)
    async with runtime(request).unit(actor, trace, ip) as ctx:
        yield ctx


async def anonymous_ctx(request: Request) -> AsyncIterator[Ctx]:
    """A unit of work for unauthenticated account calls; a POST with a foreign `Origin` → 403."""
    portal = await portal_for_request(request)
    if request.method in WRITE_METHODS:
        check_origin(request, portal)
    async with runtime(request).unit(
        Actor("developer", None, None), getattr(request.state, "trace_id", None), client_ip(request)
    ) as ctx:
        yield ctx


@dataclass
class CatalogCtx:
    ctx: Ctx
    portal: PortalInfo
    developer: SignedIn | None


async def catalog_ctx(request: Request) -> AsyncIterator[CatalogCtx]:
    """Catalog reads: anonymous on a public portal, a signed-in approved developer on a private one (401)."""
    portal = await portal_for_request(request)
    who: SignedIn | None = None
    if not portal.is_public:
        who = await signed_in_developer(request)
    actor = developers.developer_actor(who) if who else Actor("developer", None, None)
    async with runtime(request).unit(actor, getattr(request.state, "trace_id", None), client_ip(request)) as ctx:
        yield CatalogCtx(ctx, portal, who)
