"""The page routers `app.py` includes, and `/static/` (our one stylesheet and one script)."""

from __future__ import annotations

import functools
from importlib import resources

from fastapi import APIRouter
from starlette.responses import Response

from keystile.web import admin, admin_portal, portal

__all__ = ["routers"]

static = APIRouter(include_in_schema=False)

_TYPES = {"style.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}


@functools.cache
def _asset(name: str) -> bytes:
    return resources.files("keystile.web").joinpath("static", name).read_bytes()


@static.get("/static/{name}")
async def asset(name: str) -> Response:
    """Only the files listed in `_TYPES` are served; anything else is a 404."""
    media = _TYPES.get(name)
    if media is None:
        return Response("Not Found", status_code=404, media_type="text/plain")
    return Response(_asset(name), media_type=media, headers={"Cache-Control": "public, max-age=300"})


routers: tuple[APIRouter, ...] = (static, admin.router, admin_portal.router, portal.router)
