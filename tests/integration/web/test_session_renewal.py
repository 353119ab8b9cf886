"""Developer page sessions outlive the hourly access token (portal-api.md §1, §8): a page request with an expired or
missing access cookie and a live refresh cookie renews the session through the same service as
`POST /api/v2/developer/refresh`; a form posted across the renewal is kept; a dead refresh token lands on the sign-in
page with a plain message and a `next` back. Time is moved by a clock the developer service reads."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from keystile.services import developers
from keystile.store.types import utcnow
from tests.integration.web.conftest import Browser, csrf_of
from tests.integration.web.test_portal_pages import publish_key_auth_product
from tests.portal_helpers import approved_developer, ensure_default_portal

PASSWORD = "correct horse battery"
XRW = {"X-Requested-With": "XMLHttpRequest"}


@dataclass
class Clock:
    """The developer service's `utcnow`, moved by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(utcnow())
    monkeypatch.setattr(developers, "utcnow", fake)
    return fake


def set_cookies(response: httpx.Response) -> dict[tuple[str, str], dict[str, str]]:
    """{(name, path): attributes (lower-case keys; `value` holds the value)} of every Set-Cookie header."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for header in response.headers.get_list("set-cookie"):
        first, *rest = (part.strip() for part in header.split(";"))
        name, value = first.split("=", 1)
        attrs = {"value": value.strip('"')}
        for part in rest:
            key, _, val = part.partition("=")
            attrs[key.lower()] = val
        out[(name, attrs.get("path", "/"))] = attrs
    return out


async def sign_in(browser: Browser, next_path: str = "/apps") -> tuple[str, str]:
    """Sign in through the page; returns the (access, refresh) cookies it set."""
    portal_id = await ensure_default_portal(browser.runtime)
    dev = await approved_developer(browser.runtime, portal_id=portal_id, password=PASSWORD)
    response = await browser.submit("/login", "/login", {"email": dev.email, "password": PASSWORD, "next": next_path})
    assert response.status_code == 303, response.text[:300]
    cookies = set_cookies(response)
    # a refresh cookie an earlier version left on the API's path is removed, so only one is ever sent
    assert cookies[("portalrefreshtoken", "/api/v2/developer/refresh")]["max-age"] == "0"
    return cookies[("portalaccesstoken", "/")]["value"], cookies[("portalrefreshtoken", "/")]["value"]


async def me(browser: Browser, access: str) -> int:
    response = await browser.client.get("/api/v2/developer/me", headers={"Authorization": f"Bearer {access}"})
    return response.status_code


async def test_page_login_sets_both_cookies_on_a_path_the_pages_and_the_api_share(browser: Browser) -> None:
    await sign_in(browser)
    # the cookie jar sends the refresh cookie to the pages and to the API's refresh endpoint alike
    assert {c.name: c.path for c in browser.client.cookies.jar if c.name.startswith("portal")} == {
        "portalaccesstoken": "/",
        "portalrefreshtoken": "/",
    }
    renewed = await browser.client.post("/api/v2/developer/refresh", headers=XRW)
    assert renewed.status_code == 204
    assert (await browser.get("/apps")).status_code == 200


@pytest.mark.parametrize("access_cookie", ["expired", "missing"])
async def test_a_page_renews_an_expired_or_missing_access_token(
    browser: Browser, clock: Clock, access_cookie: str
) -> None:
    old_access, old_refresh = await sign_in(browser)
    clock.advance(minutes=61)
    assert await me(browser, old_access) == 401  # the hour is over
    if access_cookie == "missing":  # what a browser does once the cookie's Max-Age has passed
        browser.client.cookies.delete("portalaccesstoken")
    response = await browser.get("/apps?page=1")
    assert response.status_code == 200, response.headers.get("location")
    assert "My Apps" in response.text
    cookies = set_cookies(response)
    access, refresh = cookies[("portalaccesstoken", "/")], cookies[("portalrefreshtoken", "/")]
    assert access["value"] not in ("", old_access) and refresh["value"] not in ("", old_refresh)
    for attrs in (access, refresh):
        assert "httponly" in attrs and attrs["samesite"].lower() == "lax"
        assert "secure" not in attrs  # development posture (plain-http loopback KEYSTILE_PUBLIC_URL)
    assert access["max-age"] == "3600" and refresh["max-age"] == str(14 * 86400)
    # the renewal is the Portal API's rotation: the new token works there, the old refresh token is spent
    assert await me(browser, access["value"]) == 200
    browser.client.cookies.clear()
    clock.advance(seconds=developers.REFRESH_REUSE_GRACE.total_seconds() + 1)  # past the grace given to racing tabs
    replay = await browser.client.post(
        "/api/v2/developer/refresh", headers={**XRW, "Cookie": f"portalrefreshtoken={old_refresh}"}
    )
    assert replay.status_code == 401
    assert await me(browser, access["value"]) == 401  # reuse of a rotated token still ends every session


async def test_renewed_cookies_are_secure_outside_development_posture(browser: Browser, clock: Clock) -> None:
    browser.runtime.settings = browser.runtime.settings.model_copy(update={"public_url": "https://portal.example.com"})
    portal_id = await ensure_default_portal(browser.runtime)
    dev = await approved_developer(browser.runtime, portal_id=portal_id)
    clock.advance(hours=2)
    response = await browser.get("/apps", headers={"Cookie": f"portalrefreshtoken={dev.refresh_token}"})
    assert response.status_code == 200
    cookies = set_cookies(response)
    for name in ("portalaccesstoken", "portalrefreshtoken", "ks_csrf"):
        assert "secure" in cookies[(name, "/")], name


async def test_a_form_posted_after_the_hour_is_kept(browser: Browser, clock: Clock) -> None:
    portal_id = await ensure_default_portal(browser.runtime)
    ids = await publish_key_auth_product(browser, str(portal_id))
    await sign_in(browser)
    form = await browser.get("/apps/new")
    token = csrf_of(form.text)
    clock.advance(hours=3)
    browser.client.cookies.delete("portalaccesstoken")  # expired in the browser too
    created = await browser.post(
        "/apps/new", [("name", "late-night"), ("auth_strategy_id", ids["strategy"]), ("csrf_token", token)]
    )
    assert created.status_code == 201, created.text[:500]
    assert "Store it now" in created.text
    assert ("portalaccesstoken", "/") in set_cookies(created)
    # the page it answered with carries forms that work with the renewed session
    proceed = re.search(r'href="(/apps/[0-9a-f-]+)">Proceed', created.text)
    assert proceed
    listing = await browser.get("/apps")
    assert "late-night" in listing.text
    second = await browser.post(
        proceed.group(1) + "/credentials", [("display_name", "CI"), ("csrf_token", csrf_of(listing.text))]
    )
    assert second.status_code == 201, second.text[:500]


async def test_pages_opened_together_after_the_hour_share_one_renewal(browser: Browser, clock: Clock) -> None:
    """Tabs restored together all send the same old cookies; the second must not count as refresh-token reuse."""
    old_access, old_refresh = await sign_in(browser)
    browser.client.cookies.clear()
    clock.advance(minutes=90)
    stale = {"Cookie": f"portalaccesstoken={old_access}; portalrefreshtoken={old_refresh}"}
    first = await browser.get("/apps", headers=stale)
    second = await browser.get("/apps/new", headers=stale)  # sent before the first answer's cookies arrived
    assert first.status_code == second.status_code == 200
    a, b = set_cookies(first), set_cookies(second)
    assert a[("portalaccesstoken", "/")]["value"] == b[("portalaccesstoken", "/")]["value"]
    assert a[("portalrefreshtoken", "/")]["value"] == b[("portalrefreshtoken", "/")]["value"]
    assert await me(browser, a[("portalaccesstoken", "/")]["value"]) == 200  # no reuse was seen: the session lives
    clock.advance(seconds=20)  # a third tab, still within the grace of the rotation
    third = set_cookies(await browser.get("/apps", headers=stale))
    assert third[("portalaccesstoken", "/")]["value"] == a[("portalaccesstoken", "/")]["value"]


def _login_location(response: httpx.Response) -> tuple[str, dict[str, list[str]]]:
    assert response.status_code == 303, response.text[:300]
    parts = urlsplit(response.headers["location"])
    assert not parts.scheme and not parts.netloc
    return parts.path, parse_qs(parts.query)


async def test_a_dead_refresh_token_lands_on_sign_in_with_next_back(browser: Browser, clock: Clock) -> None:
    await sign_in(browser)
    apps = await browser.get("/apps")
    assert apps.status_code == 200
    clock.advance(days=15)  # past the refresh token's 14 days
    app_id = uuid.uuid4()
    response = await browser.get(f"/apps/{app_id}?tab=credentials")
    path, query = _login_location(response)
    assert path == "/login"
    assert query == {"next": [f"/apps/{app_id}?tab=credentials"], "expired": ["1"]}
    cleared = set_cookies(response)
    for name in ("portalaccesstoken", "portalrefreshtoken"):
        assert cleared[(name, "/")]["max-age"] == "0", name
    assert not [c for c in browser.client.cookies.jar if c.name.startswith("portal")]
    login = await browser.get(response.headers["location"])
    assert "Your session has ended" in login.text
    assert f'name="next" value="/apps/{app_id}?tab=credentials"' in login.text
    portal_id = await ensure_default_portal(browser.runtime)
    dev = await approved_developer(browser.runtime, portal_id=portal_id, password=PASSWORD)
    again = await browser.post(
        "/login",
        [
            ("email", dev.email),
            ("password", PASSWORD),
            ("next", f"/apps/{app_id}?tab=credentials"),
            ("csrf_token", csrf_of(login.text)),
        ],
    )
    assert again.status_code == 303
    assert again.headers["location"] == f"/apps/{app_id}?tab=credentials"


async def test_a_form_posted_with_a_dead_session_goes_back_to_its_page(browser: Browser, clock: Clock) -> None:
    await sign_in(browser)
    form = await browser.get("/apps/new?strategy=x")
    token = csrf_of(form.text)
    clock.advance(days=15)
    response = await browser.client.post(
        "/apps/new",
        content=f"name=lost&csrf_token={token}",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": "http://testserver/apps/new?strategy=x",
        },
    )
    path, query = _login_location(response)
    assert (path, query) == ("/login", {"next": ["/apps/new?strategy=x"], "expired": ["form"]})
    login = await browser.get(response.headers["location"])
    assert "What you last submitted was not saved" in login.text


@pytest.mark.parametrize(
    "referer",
    [
        "https://evil.example/apps",
        "http://evil.example/apps",
        "http://testserver//evil.example/x",
        "http://testserver/\\evil.example",
        "not a url",
    ],
)
async def test_a_foreign_or_hostile_referer_never_becomes_next(browser: Browser, clock: Clock, referer: str) -> None:
    await sign_in(browser)
    token = csrf_of((await browser.get("/apps/new")).text)
    clock.advance(days=15)
    response = await browser.client.post(
        "/apps/new",
        content=f"name=x&csrf_token={token}",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Referer": referer},
    )
    path, query = _login_location(response)
    assert path == "/login"
    assert "next" not in query
    assert query["expired"] == ["form"]


async def test_an_ended_session_is_not_renewed(browser: Browser, clock: Clock) -> None:
    _, refresh = await sign_in(browser)
    token = csrf_of((await browser.get("/apps")).text)
    out = await browser.post("/logout", [("csrf_token", token)])
    assert out.status_code == 303
    cleared = set_cookies(out)
    assert cleared[("portalrefreshtoken", "/")]["max-age"] == "0"
    assert cleared[("portalrefreshtoken", "/api/v2/developer/refresh")]["max-age"] == "0"  # the old path too
    # a copy of the refresh cookie kept from before the sign-out renews nothing
    response = await browser.get("/apps", headers={"Cookie": f"portalrefreshtoken={refresh}"})
    path, query = _login_location(response)
    assert (path, query) == ("/login", {"next": ["/apps"], "expired": ["1"]})
    # without any session cookie the sign-in page is reached without the message (first visit)
    browser.client.cookies.clear()
    plain = await browser.get("/apps")
    assert plain.headers["location"] == "/login?next=/apps"


async def test_a_form_from_before_sign_in_or_another_session_is_refused(browser: Browser) -> None:
    """The CSRF binding changes at sign-in and sign-out, not at the hourly renewal."""
    before = csrf_of((await browser.get("/login")).text)
    await sign_in(browser)
    stale = await browser.post("/logout", [("csrf_token", before)])
    assert stale.status_code == 403
    assert "did not come from this site" in stale.text
