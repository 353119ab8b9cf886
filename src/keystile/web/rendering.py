"""Templates, form state and the one place where domain errors become pages."""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec

import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from keystile.domain import errors as e
from keystile.logs import trace_id_var
from keystile.web import security

__all__ = [
    "Form",
    "LoginRequired",
    "comma_list",
    "environment",
    "page",
    "redirect",
    "render",
]

P = ParamSpec("P")
log = logging.getLogger(__name__)

# Admin navigation: (href, text).
ADMIN_NAV: list[tuple[str, str]] = [
    ("/admin/providers", "Providers"),
    ("/admin/strategies", "Strategies"),
    ("/admin/products", "Products"),
    ("/admin/portals", "Portals"),
    ("/admin/developers", "Developers"),
    ("/admin/registrations", "Requests"),
    ("/admin/applications", "Apps"),
    ("/admin/idp-operations", "IdP operations"),
    ("/admin/data-plane", "Data plane"),
]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class LoginRequired(Exception):
    """Raised by a page that needs a signed-in admin or developer; answered by a redirect to the sign-in page."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class AlreadySent(Exception):
    """A form that hands out a secret was sent again (a reload of its answer, a second click): it is not carried out
    twice. Answered by a redirect to the page of what the first sending made, which says so."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class ConfirmRequired(Exception):
    """A destructive form (`_confirm` = its question) was sent without `_confirmed=yes`: the browser ran no script
    to ask. Answered by a page that asks, then sends the same fields again, confirmed."""

    def __init__(self, question: str, fields: list[tuple[str, str]]) -> None:
        super().__init__(question)
        self.question = question
        self.fields = fields


@functools.cache
def environment() -> jinja2.Environment:
    """The template environment, built on first use (nothing at import time)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("keystile.web", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["commas"] = lambda v: ", ".join(str(x) for x in (v or []))
    return env


def _when(value: object) -> str:
    """`2026-11-28T10:00:00.000Z` → `2026-11-28 10:00 UTC`."""
    if not isinstance(value, str) or len(value) < 16:
        return "" if value is None else str(value)
    return f"{value[:10]} {value[11:16]} UTC"


@dataclass
class Form:
    """What a form shows: kept values, a message per field, messages for the whole form."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    top: list[str] = field(default_factory=list)
    trace_id: str | None = None
    #: prefixes the element ids of its fields, for a page with two forms that share field names
    id_prefix: str = ""

    @classmethod
    def of(cls, data: FormData | Mapping[str, Any], *, secret: Iterable[str] = ()) -> Form:
        """Kept values of a submitted form, minus passwords and secrets (never echoed back)."""
        hidden = {*secret, "csrf_token", "password", "password_confirm", "token"}
        values: dict[str, Any] = {}
        if isinstance(data, FormData):
            for key in data:
                if key in hidden:
                    continue
                items = [v for v in data.getlist(key) if isinstance(v, str)]
                values[key] = items if len(items) > 1 or key.endswith("[]") else (items[0] if items else "")
        else:
            values = {k: v for k, v in data.items() if k not in hidden}
        return cls(values=values)

    def value(self, name: str, default: Any = "") -> Any:
        return self.values.get(name, default)

    def fail(self, exc: e.KeystileError, field_map: Callable[[str], str | None] | None = None) -> Form:
        """Put the messages of a domain error beside their fields (or at the top); keep the trace id when support may
        need it (an IdP or server-side failure), not for a mistake the user can correct."""
        server_side = isinstance(exc, e.ProviderError | e.ConfigurationError | e.VaultError)
        self.trace_id = ((trace_id_var.get() or "") or None) if server_side else None
        if isinstance(exc, e.ValidationError):
            for item in exc.items:
                name = field_map(item.field) if field_map else item.field
                reason = plain(item.reason)
                if name is None:
                    label = strip_indices(item.field).rsplit(".", 1)[-1].replace("_", " ")
                    self.top.append(reason if item.field in item.reason else f"{label}: {reason}")
                    continue
                reason = beside(item.field, reason)
                if name in self.errors:
                    self.errors[name] += f"; {reason}"
                else:
                    self.errors[name] = reason
        else:
            self.top.append(describe(exc))
        return self

    @property
    def failed(self) -> bool:
        return bool(self.errors or self.top)


def describe(exc: e.KeystileError) -> str:
    """A domain error in plain words."""
    if isinstance(exc, e.ProviderError):
        return f"The identity provider did not accept the request: {exc.detail}"
    if isinstance(exc, e.NotFoundError):
        return "That item no longer exists."
    return exc.detail


_INDEX = re.compile(r"\[\d+\]")
_TECH_PREFIX = re.compile(r"\b(?:configs\.(?:openid-connect|key-auth)|dcr_config|gateway_service)\.")


def plain(reason: str) -> str:
    """A service's reason without the JSON path prefix the field already shows (`configs.openid-connect.x` → `x`)."""
    return _TECH_PREFIX.sub("", reason)


def beside(field_name: str, reason: str) -> str:
    """A reason shown beside its field, without the field's API name the label already says:
    `full_name must be at most 255 characters` → `Must be at most 255 characters`."""
    for prefix in (field_name, strip_indices(field_name).rsplit(".", 1)[-1]):
        if reason.startswith(prefix + " "):
            rest = reason[len(prefix) + 1 :]
            return rest[:1].upper() + rest[1:]
    return reason


def strip_indices(name: str) -> str:
    return _INDEX.sub("", name)


def comma_list(raw: object) -> list[str]:
    """`"a, b,,c"` → `["a", "b", "c"]`."""
    if not isinstance(raw, str):
        return []
    return [part.strip() for part in raw.split(",") if part.strip()]


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    secret: bool = False,
) -> HTMLResponse:
    """Render a page. `secret=True` marks a page that shows a secret: `Cache-Control: no-store`."""
    ctx: dict[str, Any] = {
        "request": request,
        "csrf_token": security.csrf_token(request),
        "once_token": uuid.uuid4().hex,  # forms that hand out a secret carry one (web/common.py once)
        "trace_id": (trace_id_var.get() or ""),
        "portal_name": getattr(request.state, "portal_name", None) or "keystile",
        "admin": getattr(request.state, "admin_actor", None),
        "developer": getattr(request.state, "developer", None),
        "path": request.url.path,
        "admin_nav": [*ADMIN_NAV, ("/admin/audit", "Audit log")],
        "portal_public": bool(getattr(getattr(request.state, "portal", None), "is_public", False)),
    }
    ctx.update(context or {})
    html = environment().get_template(template).render(ctx)
    headers = dict(NO_STORE) if secret else {"Cache-Control": "no-cache"}
    response = HTMLResponse(html, status_code=status, headers=headers)
    security.apply_cookies(request, response)
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def redirect(location: str) -> RedirectResponse:
    """303 after a successful POST (never carries a secret)."""
    return RedirectResponse(location, status_code=303)


def _confirm_page(request: Request, exc: ConfirmRequired) -> HTMLResponse:
    """The question a script would have asked, as a page; Cancel goes back where the form was (same site only)."""
    referer = request.headers.get("referer", "")
    origin = f"{request.url.scheme}://{request.url.netloc}"
    back = referer[len(origin) :] if referer.startswith(origin + "/") else None
    if back and (back.startswith("//") or "\\" in back):  # `//host/…` would leave the site
        back = None
    home = "/admin/" if request.url.path.startswith("/admin") else "/"
    context = {"question": exc.question, "fields": exc.fields, "action": request.url.path, "back": back or home}
    return render(request, "confirm.html", context)


def error_page(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
    return render(request, "error.html", {"title": title, "detail": detail, "status": status}, status=status)


def page(handler: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
    """Turn what a page handler raises into a page: sign-in redirect, 403 (CSRF), 404, or a message page."""

    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        request = kwargs.get("request")
        if not isinstance(request, Request):  # every page handler takes `request` by keyword
            raise TypeError(f"{handler.__name__} must take `request: Request`")
        try:
            response = await handler(*args, **kwargs)
        except LoginRequired as exc:
            response = redirect(exc.location)
        except ConfirmRequired as exc:
            response = _confirm_page(request, exc)
        except AlreadySent as exc:
            response = redirect(f"{exc.location}?saved=resent")
        except security.CsrfError as exc:
            response = error_page(request, 403, "This form could not be accepted", exc.detail)
        except e.NotFoundError:
            response = error_page(request, 404, "Not found", "There is nothing at this address, or it was removed.")
        except e.PermissionDeniedError as exc:
            response = error_page(request, 403, "Not allowed", exc.detail)
        except e.AuthenticationError as exc:
            response = error_page(request, 401, exc.title, exc.detail)
        except e.ValidationError as exc:
            response = error_page(request, 400, "Invalid request", "; ".join(i.reason for i in exc.items))
        except (e.ConflictError, e.GoneError, e.ThrottledError, e.ProviderError) as exc:
            status = (
                502
                if isinstance(exc, e.ProviderError)
                else {e.ConflictError: 409, e.GoneError: 410}.get(type(exc), 429)
            )
            response = error_page(request, status, "That did not work", describe(exc))
        except e.KeystileError:  # e.g. a VaultError: the details go to the log only
            log.exception("page %s failed", request.url.path)
            response = error_page(
                request,
                500,
                "Something went wrong",
                "An unexpected error occurred; the server log has the details under this trace id.",
            )

        security.apply_cookies(request, response)  # cookies the request decided on (session renewal, CSRF)
        return response

    return wrapper
