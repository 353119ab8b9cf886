"""The `Idempotency-Key` wrapper of creating and rotating POSTs, for both APIs (contracts/management-api.md §1.5).
The rules themselves live in `services/idempotency.py`; this module turns them into HTTP answers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.api import problems
from keystile.domain.errors import KeystileError
from keystile.services import idempotency
from keystile.services.context import Ctx

__all__ = ["Answer", "idempotent"]


@dataclass(frozen=True)
class Answer:
    """A handler's success: status, body, `Location`, and the 409 detail to keep instead of a secret-bearing body."""

    status: int
    body: dict[str, Any] | None
    location: str | None = None
    secret: str | None = None


def _response(status: int, body: dict[str, Any] | None, location: str | None, replayed: bool = False) -> Response:
    headers: dict[str, str] = {}
    if location:
        headers["Location"] = location
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    if body is None:
        return Response(status_code=status, headers=headers)
    media = "application/problem+json" if status >= 400 else "application/json"
    return JSONResponse(body, status_code=status, headers=headers, media_type=media)


async def idempotent(request: Request, ctx: Ctx, body: Any, run: Callable[[], Awaitable[Answer]]) -> Response:
    """Run a creating POST under its `Idempotency-Key`, when one is sent (management-api.md §1.5)."""
    key = request.headers.get("idempotency-key")
    if key is None:
        answer = await run()
        return _response(answer.status, answer.body, answer.location)
    rt = ctx.runtime
    claim = await idempotency.begin(
        rt,
        scope=f"{ctx.actor.type}:{ctx.actor.id}",
        method=request.method,
        path=request.url.path,
        key=key,
        body=body,
    )
    if isinstance(claim, idempotency.Replay):
        return _response(claim.status, claim.body, claim.location, replayed=True)
    try:
        answer = await run()
    except KeystileError as exc:
        await ctx.session.rollback()  # the refused change is over; the kept answer must not ride on it
        status = problems.status_for(exc)
        if status < 500:
            kept = problems.to_response(exc)
            headers = kept.headers
            await idempotency.finish(
                rt, claim, status=status, body=json.loads(bytes(kept.body)), location=headers.get("location")
            )
        else:
            await idempotency.release(rt, claim)
        raise
    except BaseException:
        await idempotency.release(rt, claim)
        raise
    await idempotency.finish(
        rt, claim, status=answer.status, body=answer.body, location=answer.location, secret=answer.secret
    )
    return _response(answer.status, answer.body, answer.location)
