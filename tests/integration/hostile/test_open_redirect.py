"""Open redirects after sign-in: a hostile `next` never sends the browser to another origin (admin and portal)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.integration.web.conftest import Browser, browser
from tests.portal_helpers import approved_developer, ensure_default_portal

__all__ = ["browser"]

HOSTILE = [
    "//evil.example",
    "/\t/evil.example",
    "/\\evil.example",
    "https://evil.example/",
    "/%2F/evil.example",
    "/admin//evil.example",
    "/admin/\\evil.example",
    "javascript:alert(1)",
    "/\r\nSet-Cookie: x=1",
]


def _stays_here(location: str) -> None:
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc, location
    assert location.startswith("/") and not location.startswith("//") and "\\" not in location, location
    assert "\t" not in location and "\r" not in location and "\n" not in location, location


@pytest.mark.parametrize("target", HOSTILE)
async def test_portal_sign_in_next_stays_on_the_portal(browser: Browser, target: str) -> None:
    portal_id = await ensure_default_portal(browser.runtime)
    dev = await approved_developer(browser.runtime, portal_id=portal_id, password="correct horse battery")
    response = await browser.submit(
        "/login", "/login", {"email": dev.email, "password": "correct horse battery", "next": target}
    )
    assert response.status_code == 303, response.text[:300]
    _stays_here(response.headers["location"])
    assert "set-cookie: x=1" not in str(response.headers).lower()


async def test_admin_sign_in_next_stays_in_the_admin(browser: Browser) -> None:
    for target in HOSTILE:
        browser.client.cookies.clear()
        response = await browser.submit(
            "/admin/login", "/admin/login", {"admin_token": browser.admin_token, "next": target}
        )
        assert response.status_code == 303, response.text[:300]
        _stays_here(response.headers["location"])
        assert response.headers["location"].startswith("/admin/")
