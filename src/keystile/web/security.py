"""Page sessions and CSRF tokens (portal-api.md §8).

Admin session: the admin token is exchanged for a cookie `ks_admin` holding, sealed with the vault's AES-256-GCM
(authenticated, so it is also signed), `{sid, token, exp}`: a random 256-bit session id, the admin token and an
expiry. Every request re-authenticates the token through `services.admin_tokens`, so revoking the token ends every
page session at once; no session table is needed. The cookie is HttpOnly, `SameSite=Strict`, `Path=/admin` and
`Secure` outside development posture.

Developer session: the cookies of `POST /api/v2/developer/authenticate` (portal-api.md §1), so pages and the
Portal API share one session: `portalaccesstoken` (1 h) and `portalrefreshtoken` (14 days), both `Path=/` so that a
page can renew an expired access token from the refresh token (portal-api.md §8). A refresh cookie left on the old
narrow path (`/api/v2/developer/refresh`) by an earlier version is deleted whenever the session cookies are set or
cleared.

CSRF: each form carries `csrf_token = SHA-256("keystile-csrf|" + area + "|" + binding)` where the binding is a
secret the browser holds in an HttpOnly cookie an attacker cannot read: the admin session id (before admin sign-in
a short-lived vault-sealed pre-session cookie `ks_presession`), and on the portal a vault-sealed random nonce in
`ks_csrf`. The portal binding does not change when the hourly access token is renewed, so a form rendered before
the renewal is still accepted after it; it is replaced at sign-in and sign-out, and lives as long as a refresh token.

Cookies a request decides to set (pre-session, `ks_csrf`, renewed or cleared developer sessions) are queued on
`request.state` and written by `apply_cookies` onto whatever response the page ends with (page, redirect, error).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from keystile.domain.errors import KeystileError
from keystile.services import developers
from keystile.services.context import Runtime
from keystile.services.developers import PortalInfo, SessionTokens

__all__ = [
    "ADMIN_COOKIE",
    "DEV_ACCESS_COOKIE",
    "DEV_REFRESH_COOKIE",
    "PORTAL_CSRF_COOKIE",
    "PRESESSION_COOKIE",
    "AdminSession",
    "CsrfError",
    "apply_cookies",
    "check_csrf",
    "clear_developer_session",
    "csrf_token",
    "open_admin_session",
    "read_admin_session",
    "renew_portal_csrf",
    "rotate_portal_csrf",
    "set_developer_session",
]

ADMIN_COOKIE = "ks_admin"
PRESESSION_COOKIE = "ks_presession"
PORTAL_CSRF_COOKIE = "ks_csrf"
DEV_ACCESS_COOKIE = "portalaccesstoken"
DEV_REFRESH_COOKIE = "portalrefreshtoken"
DEV_COOKIE_PATH = "/"
LEGACY_REFRESH_PATH = "/api/v2/developer/refresh"  # where versions before the page renewal put the refresh cookie
ADMIN_SESSION_SECONDS = 8 * 3600
PRESESSION_SECONDS = 2 * 3600
PORTAL_CSRF_SECONDS = int(developers.REFRESH_TTL.total_seconds())
_SEAL = {"table": "web_sessions", "row_id": "cookie"}


class CsrfError(KeystileError):
    """A page form without the right `csrf_token` (rendered as a 403 page)."""


@dataclass(frozen=True)
class AdminSession:
    sid: str
    token: str
    expires: int


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def _seal(rt: Runtime, field: str, payload: dict[str, object]) -> str:
    return rt.vault.encrypt(json.dumps(payload, separators=(",", ":")), field=field, **_SEAL)


def _unseal(rt: Runtime, field: str, value: str | None) -> dict[str, object] | None:
    if not value:
        return None
    try:
        data = json.loads(rt.vault.decrypt(value, field=field, **_SEAL))
    except (KeystileError, ValueError):
        return None  # a cookie from another key, tampered or truncated: treated as absent
    if not isinstance(data, dict):
        return None
    exp = data.get("exp")
    if not isinstance(exp, int) or exp < time.time():
        return None
    return data


def _secure(request: Request) -> bool:
    return not _runtime(request).settings.dev_mode


def _queue(request: Request, key: str, write: Callable[[Response], None]) -> None:
    """Queue a cookie change for the response this request ends with; a later change of the same key wins."""
    pending: dict[str, Callable[[Response], None]] | None = getattr(request.state, "pending_cookies", None)
    if pending is None:
        pending = {}
        request.state.pending_cookies = pending
    pending.pop(key, None)  # keep the order of the latest decisions
    pending[key] = write


def apply_cookies(request: Request, response: Response) -> None:
    """Write the queued cookie changes onto `response` (once: a second call writes nothing)."""
    pending: dict[str, Callable[[Response], None]] | None = getattr(request.state, "pending_cookies", None)
    if not pending:
        return
    request.state.pending_cookies = {}
    for write in pending.values():
        write(response)


def open_admin_session(request: Request, response: Response, token: str) -> AdminSession:
    """Set the admin session cookie for an admin token already authenticated."""
    session = AdminSession(secrets.token_urlsafe(32), token, int(time.time()) + ADMIN_SESSION_SECONDS)
    sealed = _seal(_runtime(request), "admin", {"sid": session.sid, "tok": session.token, "exp": session.expires})
    response.set_cookie(
        ADMIN_COOKIE,
        sealed,
        max_age=ADMIN_SESSION_SECONDS,
        path="/admin",
        httponly=True,
        secure=_secure(request),
        samesite="strict",
    )
    return session


def close_admin_session(request: Request, response: Response) -> None:
    response.delete_cookie(ADMIN_COOKIE, path="/admin", httponly=True, secure=_secure(request), samesite="strict")


def read_admin_session(request: Request) -> AdminSession | None:
    """The admin session of this request (not yet checked against the token store), or None."""
    data = _unseal(_runtime(request), "admin", request.cookies.get(ADMIN_COOKIE))
    if data is None:
        return None
    sid, tok, exp = data.get("sid"), data.get("tok"), data.get("exp")
    if not isinstance(sid, str) or not isinstance(tok, str) or not isinstance(exp, int):
        return None
    return AdminSession(sid, tok, exp)


def _digest(area: str, binding: str) -> str:
    return hashlib.sha256(f"keystile-csrf|{area}|{binding}".encode()).hexdigest()


def _area(request: Request) -> str:
    return "admin" if request.url.path.startswith("/admin") else "portal"


def _nonce(request: Request, field: str, cookie: str) -> str | None:
    data = _unseal(_runtime(request), field, request.cookies.get(cookie))
    value = data.get("n") if data is not None else None
    return value if isinstance(value, str) and value else None


def _binding(request: Request) -> str | None:
    """The secret the submitted form was bound to (from this request's cookies), without creating one."""
    if _area(request) == "admin":
        session = read_admin_session(request)
        if session is not None:
            return "s:" + session.sid
        nonce = _nonce(request, "presession", PRESESSION_COOKIE)
        return "p:" + nonce if nonce else None
    nonce = _nonce(request, "portal-csrf", PORTAL_CSRF_COOKIE)
    return "c:" + nonce if nonce else None


def _queue_portal_nonce(request: Request, nonce: str) -> None:
    sealed = _seal(_runtime(request), "portal-csrf", {"n": nonce, "exp": int(time.time()) + PORTAL_CSRF_SECONDS})
    request.state.portal_csrf_nonce = nonce
    request.state.csrf_token = None
    _queue(
        request,
        PORTAL_CSRF_COOKIE,
        lambda response: response.set_cookie(
            PORTAL_CSRF_COOKIE,
            sealed,
            max_age=PORTAL_CSRF_SECONDS,
            path="/",
            httponly=True,
            secure=_secure(request),
            samesite="lax",
        ),
    )


def rotate_portal_csrf(request: Request) -> None:
    """A new portal binding (at sign-in and sign-out): forms rendered before it are refused."""
    _queue_portal_nonce(request, secrets.token_urlsafe(32))


def renew_portal_csrf(request: Request) -> None:
    """Keep the current portal binding for another refresh-token lifetime (when the session is renewed)."""
    nonce = getattr(request.state, "portal_csrf_nonce", None) or _nonce(request, "portal-csrf", PORTAL_CSRF_COOKIE)
    if isinstance(nonce, str):
        _queue_portal_nonce(request, nonce)


def _render_binding(request: Request) -> str:
    """The binding for forms rendered now, creating one (queued as a cookie) when the browser has none."""
    if _area(request) == "portal":
        nonce = getattr(request.state, "portal_csrf_nonce", None) or _nonce(request, "portal-csrf", PORTAL_CSRF_COOKIE)
        if not isinstance(nonce, str):
            nonce = secrets.token_urlsafe(32)
            _queue_portal_nonce(request, nonce)
        return "c:" + nonce
    binding = _binding(request)
    if binding is not None:
        return binding
    nonce = secrets.token_urlsafe(32)
    sealed = _seal(_runtime(request), "presession", {"n": nonce, "exp": int(time.time()) + PRESESSION_SECONDS})
    _queue(
        request,
        PRESESSION_COOKIE,
        lambda response: response.set_cookie(
            PRESESSION_COOKIE,
            sealed,
            max_age=PRESESSION_SECONDS,
            path="/",
            httponly=True,
            secure=_secure(request),
            samesite="lax",
        ),
    )
    return "p:" + nonce


def csrf_token(request: Request) -> str:
    """The token for forms on this page; creates the binding cookie (set by `apply_cookies`) when needed."""
    cached = getattr(request.state, "csrf_token", None)
    if isinstance(cached, str):
        return cached
    token = _digest(_area(request), _render_binding(request))
    request.state.csrf_token = token
    return token


# ---- developer session cookies (portal-api.md §1) ---------------------------------------------------------


def _dev_cookie_attrs(request: Request, portal: PortalInfo) -> tuple[bool, str]:
    """(secure, samesite): `SameSite=None` (and so `Secure`) only for a separately hosted portal client."""
    secure = not _runtime(request).settings.dev_mode or portal.custom_client_domain is not None
    return secure, ("none" if portal.custom_client_domain else "lax")


def set_developer_session(request: Request, portal: PortalInfo, tokens: SessionTokens) -> None:
    """Queue the session cookies of `tokens` (the same as the Portal API's authenticate and refresh set)."""
    secure, samesite = _dev_cookie_attrs(request, portal)

    def write(response: Response) -> None:
        response.delete_cookie(
            DEV_REFRESH_COOKIE,
            path=LEGACY_REFRESH_PATH,
            secure=secure,
            httponly=True,
            samesite=samesite,  # type: ignore[arg-type]
        )
        for name, value, ttl in (
            (DEV_ACCESS_COOKIE, tokens.access_token, developers.ACCESS_TTL),
            (DEV_REFRESH_COOKIE, tokens.refresh_token, developers.REFRESH_TTL),
        ):
            response.set_cookie(
                name,
                value,
                max_age=int(ttl.total_seconds()),
                path=DEV_COOKIE_PATH,
                secure=secure,
                httponly=True,
                samesite=samesite,  # type: ignore[arg-type]
            )

    _queue(request, "developer-session", write)


def clear_developer_session(request: Request, portal: PortalInfo) -> None:
    """Queue the removal of the developer session cookies (and of a refresh cookie on the old path)."""
    secure, samesite = _dev_cookie_attrs(request, portal)

    def write(response: Response) -> None:
        for name, path in (
            (DEV_ACCESS_COOKIE, DEV_COOKIE_PATH),
            (DEV_REFRESH_COOKIE, DEV_COOKIE_PATH),
            (DEV_REFRESH_COOKIE, LEGACY_REFRESH_PATH),
        ):
            response.delete_cookie(name, path=path, secure=secure, httponly=True, samesite=samesite)  # type: ignore[arg-type]

    _queue(request, "developer-session", write)


def check_csrf(request: Request, submitted: object) -> None:
    """Raises CsrfError unless `submitted` is this session's (or pre-session's) token."""
    binding = _binding(request)
    if binding is None or not isinstance(submitted, str) or not submitted:
        raise CsrfError("the form has expired or did not come from this site; reload the page and try again")
    if not hmac.compare_digest(submitted, _digest(_area(request), binding)):
        raise CsrfError("the form has expired or did not come from this site; reload the page and try again")
