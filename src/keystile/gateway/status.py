"""The status port (contracts/gateway.md §7): `/metrics`, `/status`, `/status/ready`, `/status/live`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from keystile import __version__
from keystile.gateway.metrics import GatewayMetrics

__all__ = ["StatusInfo", "build_status_app"]

StatusInfo = Callable[[], dict[str, Any]]


class _Exposed:
    """A registry view onto whichever metrics object `source()` returns at scrape time."""

    def __init__(self, source: Callable[[], GatewayMetrics]) -> None:
        self._source = source

    def collect(self) -> Any:
        return self._source().collect()


def build_status_app(metrics: Callable[[], GatewayMetrics], info: StatusInfo) -> web.Application:
    """`metrics()` gives the (possibly merged) counters; `info()` the `/status` fields but `version`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Exposed(metrics))

    async def metrics_handler(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def status_handler(request: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps({"version": __version__, **info()}), content_type="application/json", charset="utf-8"
        )

    async def ready_handler(request: web.Request) -> web.Response:
        ready = info().get("config_version") is not None
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def live_handler(request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/status", status_handler)
    app.router.add_get("/status/ready", ready_handler)
    app.router.add_get("/status/live", live_handler)
    return app
