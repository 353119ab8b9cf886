"""Helpers shared by the admin and portal pages: forms, contexts, list queries."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request

from keystile.domain.errors import ConflictError, NotFoundError
from keystile.domain.listing import ListQuery, ListSpec, parse_list_query
from keystile.services import idempotency
from keystile.services.context import Actor, Ctx, Runtime
from keystile.web import security
from keystile.web.rendering import AlreadySent, ConfirmRequired

__all__ = ["Once", "form_bool", "list_query", "once", "parse_id", "read_form", "runtime", "unit"]


@dataclass
class Once:
    """Set `location` to the page of what the form made once it succeeded; unset, the form may be sent again."""

    location: str | None = None


@asynccontextmanager
async def once(request: Request, data: FormData, actor: Actor) -> AsyncIterator[Once]:
    """Carry out a form that hands out a secret at most once. Its `form_once` value (fresh on every page render) is
    claimed like an `Idempotency-Key` (services/idempotency.py); the answer, which holds the secret, is not kept.

    Raises:
        AlreadySent: this form was carried out before (a reload of the secret page, a second click).
        ConflictError: the first sending is still being carried out.
    """
    key = data.get("form_once")
    rt = runtime(request)
    claim = None
    if isinstance(key, str) and key:
        try:
            begun = await idempotency.begin(
                rt, scope=f"page:{actor.type}:{actor.id}", method="POST", path=request.url.path, key=key, body={}
            )
        except ConflictError as exc:
            if exc.location:
                raise AlreadySent(exc.location) from exc
            raise ConflictError("This form is already being sent; look at My Apps in a moment.") from exc
        claim = begun if isinstance(begun, idempotency.Claim) else None
    outcome = Once()
    try:
        yield outcome
    except BaseException:
        if claim is not None:
            await idempotency.release(rt, claim)
        raise
    if claim is None:
        return
    if outcome.location is None:  # refused: the user corrects the form and sends it again
        await idempotency.release(rt, claim)
    else:
        await idempotency.finish(rt, claim, status=201, body=None, location=outcome.location, secret="sent")


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def read_form(request: Request) -> FormData:
    """The submitted form, after its CSRF token was checked (raises security.CsrfError) and, for a destructive form,
    after the user confirmed it (raises ConfirmRequired when no script asked: the page asks instead)."""
    form = await request.form()
    security.check_csrf(request, form.get("csrf_token"))
    question = form.get("_confirm")
    if isinstance(question, str) and question and form.get("_confirmed") != "yes":
        kept = [(k, v) for k, v in form.multi_items() if isinstance(v, str) and k not in ("csrf_token", "_confirmed")]
        raise ConfirmRequired(question, kept)
    return form


@asynccontextmanager
async def unit(request: Request, actor: Actor) -> AsyncIterator[Ctx]:
    trace = getattr(request.state, "trace_id", None)
    ip = request.client.host if request.client else None
    async with runtime(request).unit(actor, trace, ip) as ctx:
        yield ctx


def parse_id(value: str) -> uuid.UUID:
    """A path id; anything but a UUID is a 404 page."""
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise NotFoundError() from exc


def form_bool(form: FormData, name: str) -> bool:
    """A checkbox rendered with a hidden `false` before it: checked when any value is `true`."""
    return "true" in form.getlist(name)


def form_text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def list_query(spec: ListSpec, params: list[tuple[str, str]], page: int = 1, size: int = 50) -> ListQuery:
    """A ListQuery for a page's table (raises ValidationError for bad filters)."""
    query = parse_list_query(params, spec)
    query.page_number = max(page, 1)
    query.page_size = size
    return query


def page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1


def clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "")}
