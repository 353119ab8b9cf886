"""A browser-like client on the in-process app: cookies kept, forms posted with their CSRF token."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from argon2 import PasswordHasher

from keystile.app import create_app
from keystile.services import admin_tokens
from keystile.services.context import Runtime

_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


def csrf_of(page: str) -> str:
    match = _CSRF.search(page)
    assert match, "the page has no csrf_token field"
    return match.group(1)


def field_error(page: str, name: str) -> str | None:
    """The message rendered beside a field, if any."""
    ident = name.replace(".", "-") + "-error"
    match = re.search(rf'<p class="field-error" id="{re.escape(ident)}">(.*?)</p>', page, re.S)
    return html.unescape(match.group(1)) if match else None


def form_fields(page: str, action: str) -> list[tuple[str, str]]:
    """The hidden fields of the form posting to `action`, as a browser without scripts would send them."""
    match = re.search(rf'<form method="post" action="{re.escape(action)}"[^>]*>(.*?)</form>', page, re.S)
    assert match, f"no form posts to {action}"
    return [
        (html.unescape(name), html.unescape(value))
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', match.group(1))
    ]


def input_value(page: str, name: str) -> str | None:
    match = re.search(rf'<input id="[^"]*" name="{re.escape(name)}" type="[^"]*" value="([^"]*)"', page)
    return html.unescape(match.group(1)) if match else None


@dataclass
class Browser:
    client: httpx.AsyncClient
    runtime: Runtime
    admin_token: str

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.get(url, **kw)

    async def submit(self, page_url: str, action: str, data: dict[str, Any] | list[tuple[str, str]]) -> httpx.Response:
        """Load `page_url`, take its CSRF token and post `data` to `action`, like a browser would."""
        page = await self.client.get(page_url)
        assert page.status_code == 200, page.text[:500]
        token = csrf_of(page.text)
        items = list(data.items()) if isinstance(data, dict) else list(data)
        return await self.post(action, [*items, ("csrf_token", token)])

    async def post(self, action: str, items: list[tuple[str, str]]) -> httpx.Response:
        """A urlencoded form post (repeated names allowed, as browsers send checkboxes)."""
        return await self.client.post(
            action, content=urlencode(items), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )

    async def admin_login(self) -> None:
        response = await self.submit("/admin/login", "/admin/login", {"admin_token": self.admin_token})
        assert response.status_code == 303, response.text[:500]


@pytest.fixture
async def browser(runtime: Runtime) -> AsyncIterator[Browser]:
    runtime.extras["password_hasher"] = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    app = create_app(runtime.settings, runtime=runtime)
    _, token = await admin_tokens.create(runtime, "web-tests")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Browser(client, runtime, token)
