"""Page sessions and CSRF tokens (portal-api.md §8).

Admin session: the admin token is exchanged for a cookie `ks_admin` holding, sealed with the vault's AES-256-GCM
(authenticated, so it is also signed), `{sid, token, exp}`: a random 256-bit session id, the admin token and an
expiry. Every request re-authenticates the token through `services.admin_tokens`, so revoking the token ends every
page session at once; no session table is needed. The cookie is HttpOnly, `SameSite=Strict`, `Path=/admin` and
`Secure` outside development posture.

CSRF: each form carries `csrf_token = SHA-256("keystile-csrf|" + area + "|" + binding)` where the binding is a
secret the browser holds in an HttpOnly cookie an attacker cannot read: the admin session id, the developer's
`portalaccesstoken`, or before sign-in a short-lived vault-sealed pre-session cookie `ks_presession`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from keystile.domain.errors import KeystileError
from keystile.services.context import Runtime

__all__ = [
    "ADMIN_COOKIE",
    "DEV_ACCESS_COOKIE",
    "PRESESSION_COOKIE",
    "AdminSession",
    "CsrfError",
    "check_csrf",
    "csrf_token",
    "open_admin_session",
    "read_admin_session",
]

ADMIN_COOKIE = "ks_admin"
PRESESSION_COOKIE = "ks_presession"
DEV_ACCESS_COOKIE = "portalaccesstoken"
ADMIN_SESSION_SECONDS = 8 * 3600
PRESESSION_SECONDS = 2 * 3600
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


def _binding(request: Request) -> str | None:
    """The secret this request's forms are bound to, without creating one."""
    area = _area(request)
    if area == "admin":
        session = read_admin_session(request)
        if session is not None:
            return "s:" + session.sid
    else:
        access = request.cookies.get(DEV_ACCESS_COOKIE)
        if access:
            return "d:" + access
    data = _unseal(_runtime(request), "presession", request.cookies.get(PRESESSION_COOKIE))
    if data is not None and isinstance(data.get("n"), str):
        return "p:" + str(data["n"])
    return None


def csrf_token(request: Request) -> str:
    """The token for forms on this page; creates a pre-session (cookie set by `apply_cookies`) when needed."""
    cached = getattr(request.state, "csrf_token", None)
    if isinstance(cached, str):
        return cached
    binding = _binding(request)
    if binding is None:
        nonce = secrets.token_urlsafe(32)
        sealed = _seal(_runtime(request), "presession", {"n": nonce, "exp": int(time.time()) + PRESESSION_SECONDS})
        request.state.new_presession = sealed
        binding = "p:" + nonce
    token = _digest(_area(request), binding)
    request.state.csrf_token = token
    return token


def apply_cookies(request: Request, response: Response) -> None:
    """Set the pre-session cookie this render created, if any."""
    sealed = getattr(request.state, "new_presession", None)
    if isinstance(sealed, str):
        response.set_cookie(
            PRESESSION_COOKIE,
            sealed,
            max_age=PRESESSION_SECONDS,
            path="/",
            httponly=True,
            secure=_secure(request),
            samesite="lax",
        )


def check_csrf(request: Request, submitted: object) -> None:
    """Raises CsrfError unless `submitted` is this session's (or pre-session's) token."""
    binding = _binding(request)
    if binding is None or not isinstance(submitted, str) or not submitted:
        raise CsrfError("the form has expired or did not come from this site; reload the page and try again")
    if not hmac.compare_digest(submitted, _digest(_area(request), binding)):
        raise CsrfError("the form has expired or did not come from this site; reload the page and try again")
