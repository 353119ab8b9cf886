"""An in-process control plane over the test runtime, with an admin token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from keystile.app import create_app
from keystile.services import admin_tokens
from keystile.services.context import Runtime


@dataclass
class Admin:
    client: httpx.AsyncClient
    token: str
    runtime: Runtime

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[Admin]:
    """An httpx client on the ASGI app (no network), authenticated as a fresh admin token."""
    app = create_app(runtime.settings, runtime=runtime)
    _, token = await admin_tokens.create(runtime, "tests")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield Admin(client, token, runtime)
