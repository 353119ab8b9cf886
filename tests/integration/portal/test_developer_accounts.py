"""Developer accounts over HTTP (portal-api.md §1, §2.1): the whole journey, no enumeration, 401 bodies,
throttling, CSRF, cookies, refresh rotation, public portals, audit."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from keystile.services import developers, housekeeping, throttle
from keystile.services.context import SYSTEM
from keystile.store.models import Developer, DeveloperToken, Portal, ThrottleEvent
from keystile.store.types import utcnow
from tests.integration.portal.conftest import PortalEnv, use_settings

XRW = {"X-Requested-With": "XMLHttpRequest"}


def jar(**cookies: str) -> dict[str, str]:
    """A Cookie header (httpx deprecates per-request cookies=)."""
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


PASSWORD = "correct horse battery staple"


async def sign_up_and_verify(env: PortalEnv, email: str, name: str = "Jane Dev") -> str:
    """Sign up, read the verification mail, verify, set the first password; returns the email."""
    r = await env.client.post("/api/v2/developer", json={"email": email, "full_name": name})
    assert r.status_code == 201, r.text
    verify = await env.client.post("/api/v2/developer/verify-email", json={"token": env.last_token(email)})
    assert verify.status_code == 202, verify.text
    body = verify.json()
    assert body["email"] == email
    r = await env.client.post("/api/v2/developer/reset-password", json={"token": body["token"], "password": PASSWORD})
    assert r.status_code == 204, r.text
    return email


async def login(env: PortalEnv, email: str, password: str = PASSWORD):
    return await env.client.post("/api/v2/developer/authenticate", json={"username": email, "password": password})


async def set_portal(env: PortalEnv, **fields: object) -> None:
    async with env.runtime.sessions() as session:
        await session.execute(update(Portal).where(Portal.id == env.portal_id).values(**fields))
        await session.commit()


async def test_journey_sign_up_verify_password_login_me_refresh_logout(portal_env: PortalEnv):
    env = portal_env
    await set_portal(env, auto_approve_developers=True)
    r = await env.client.post("/api/v2/developer", json={"email": "Jane@Example.com", "full_name": "Jane Dev"})
    assert r.status_code == 201
    assert r.content == b""
    [mail] = env.mails()
    assert mail["To"] == "jane@example.com"
    assert "Confirm your email" in mail["Subject"]
    link_token = env.last_token("jane@example.com")
    assert f"http://127.0.0.1:8080/verify-email?token={link_token}" in mail.get_content()

    verify = await env.client.post("/api/v2/developer/verify-email", json={"token": link_token})
    assert verify.status_code == 202
    assert verify.json()["email"] == "jane@example.com"
    password_token = verify.json()["token"]
    assert str(uuid.UUID(password_token)) == password_token and password_token != link_token
    again = await env.client.post("/api/v2/developer/verify-email", json={"token": link_token})
    assert again.status_code == 410

    short = await env.client.post(
        "/api/v2/developer/reset-password", json={"token": password_token, "password": "short"}
    )
    assert short.status_code == 400
    assert short.json()["invalid_parameters"][0]["rule"] == "min_length"
    r = await env.client.post("/api/v2/developer/reset-password", json={"token": password_token, "password": PASSWORD})
    assert r.status_code == 204

    r = await login(env, "jane@example.com")
    assert r.status_code == 204, r.text
    access = r.cookies["portalaccesstoken"]
    refresh_token = r.cookies["portalrefreshtoken"]
    async with env.runtime.sessions() as session:
        stored = {row.token_sha256 for row in (await session.execute(select(DeveloperToken))).scalars()}
    assert access not in str(stored) and len(access) >= 43  # 256 bits, stored only as SHA-256

    me = await env.client.get("/api/v2/developer/me")
    assert me.status_code == 200
    assert set(me.json()) == {"id", "email", "full_name", "created_at", "updated_at"}
    assert me.json()["full_name"] == "Jane Dev"

    # refresh sends only the refresh cookie (its Path); rotation gives new tokens
    env.client.cookies.clear()
    r = await env.client.post("/api/v2/developer/refresh", headers={**XRW, **jar(portalrefreshtoken=refresh_token)})
    assert r.status_code == 204, r.text
    new_access = r.cookies["portalaccesstoken"]
    assert new_access != access and r.cookies["portalrefreshtoken"] != refresh_token
    assert (
        await env.client.get("/api/v2/developer/me", headers={"Authorization": f"Bearer {access}"})
    ).status_code == 401
    env.client.cookies.clear()
    assert (
        await env.client.get("/api/v2/developer/me", headers={"Authorization": f"Bearer {new_access}"})
    ).status_code == 200

    r = await env.client.post("/api/v2/developer/logout", headers={**XRW, **jar(portalaccesstoken=new_access)})
    assert r.status_code == 204
    assert 'portalaccesstoken=""' in r.headers.get_list("set-cookie")[0]
    env.client.cookies.clear()
    assert (
        await env.client.get("/api/v2/developer/me", headers={"Authorization": f"Bearer {new_access}"})
    ).status_code == 401


async def test_sign_up_does_not_enumerate_accounts(portal_env: PortalEnv):
    env = portal_env
    await set_portal(env, auto_approve_developers=True)
    await sign_up_and_verify(env, "known@example.com")
    known = await env.client.post("/api/v2/developer", json={"email": "known@example.com", "full_name": "Someone"})
    unknown = await env.client.post("/api/v2/developer", json={"email": "new@example.com", "full_name": "Someone"})
    assert known.status_code == unknown.status_code == 201
    assert known.content == unknown.content == b""
    last_to_known = [m for m in env.mails() if m["To"] == "known@example.com"][-1]
    assert "already have an account" in last_to_known["Subject"]
    assert "token=" not in last_to_known.get_content()
    # forgot-password: 200 either way; only the known address gets a link
    a = await env.client.post("/api/v2/developer/forgot-password", json={"email": "known@example.com"})
    b = await env.client.post("/api/v2/developer/forgot-password", json={"email": "nobody@example.com"})
    assert a.status_code == b.status_code == 200
    assert a.content == b.content
    assert not [m for m in env.mails() if m["To"] == "nobody@example.com"]
    reset = env.last_token("known@example.com")
    r = await env.client.post(
        "/api/v2/developer/reset-password", json={"token": reset, "password": "another long password"}
    )
    assert r.status_code == 204
    assert (await login(env, "known@example.com")).status_code == 401
    assert (await login(env, "known@example.com", "another long password")).status_code == 204


async def test_unauthenticated_errors_and_bodies(portal_env: PortalEnv):
    env = portal_env
    await sign_up_and_verify(env, "pending@example.com")  # auto_approve_developers is false → pending
    wrong = await login(env, "pending@example.com", "wrong password!!")
    unknown = await login(env, "ghost@example.com", "wrong password!!")
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["title"] == "Invalid Credentials"
        assert r.json()["detail"] == "You have entered an invalid email or password."
    pending = await login(env, "pending@example.com")
    assert pending.status_code == 401
    assert (pending.json()["title"], pending.json()["detail"]) == (
        "Approval Required",
        "Your account is pending approval for access.",
    )
    async with env.runtime.sessions() as session:
        await session.execute(
            update(Developer).where(Developer.email == "pending@example.com").values(status="revoked")
        )
        await session.commit()
    revoked = await login(env, "pending@example.com")
    assert revoked.status_code == 401
    assert revoked.json()["title"] == "Account Disabled"
    assert "revoked" in revoked.json()["detail"]
    assert "portalaccesstoken" not in revoked.cookies
    events = (await env.admin.get("/v2/audit-logs", params={"filter[outcome]": "failure"})).json()["data"]
    reasons = [e["changes"]["reason"]["to"] for e in events if e["action"] == "developer.authenticate"]
    assert sorted(reasons) == ["invalid_credentials", "invalid_credentials", "status_pending", "status_revoked"]

    assert (
        await env.client.post("/api/v2/developer/verify-email", json={"token": str(uuid.uuid4())})
    ).status_code == 404
    bad = await env.client.post("/api/v2/developer/verify-email", json={"token": "not-a-uuid"})
    assert bad.status_code == 400
    assert bad.json()["invalid_parameters"][0]["field"] == "token"
    missing = await env.client.post("/api/v2/developer", json={"email": "x@example.com"})
    assert missing.status_code == 400
    assert missing.json()["invalid_parameters"][0] == {
        "field": "full_name",
        "rule": "required",
        "reason": "full_name is required",
        "source": "body",
    }
    assert (await env.client.post("/api/v2/developer/refresh")).status_code == 401
    assert (await env.client.post("/api/v2/developer/logout")).status_code == 204
    assert (await env.client.get("/api/v2/developer/authenticate/sso")).status_code == 404


async def test_expired_verification_token_is_gone(portal_env: PortalEnv):
    env = portal_env
    await env.client.post("/api/v2/developer", json={"email": "late@example.com", "full_name": "Late"})
    token = env.last_token("late@example.com")
    async with env.runtime.sessions() as session:
        await session.execute(update(DeveloperToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    r = await env.client.post("/api/v2/developer/verify-email", json={"token": token})
    assert r.status_code == 410
    assert r.json()["title"] == "Gone"


async def test_failed_logins_are_throttled_per_account_and_per_ip(portal_env: PortalEnv):
    env = portal_env
    await set_portal(env, auto_approve_developers=True)
    await sign_up_and_verify(env, "victim@example.com")
    for _ in range(10):
        assert (await login(env, "victim@example.com", "guessing wrong!")).status_code == 401
    r = await login(env, "victim@example.com")  # even the right password: the account is locked for now
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 15 * 60
    # another account from the same IP still works (10 failures < 50 per IP)
    await sign_up_and_verify(env, "other@example.com")
    assert (await login(env, "other@example.com")).status_code == 204
    # 50 failures from one IP within 15 min block every account from it
    async with env.runtime.unit(SYSTEM) as ctx:
        for _ in range(40):
            await throttle.hit(ctx, "login:ip:127.0.0.1")
        await ctx.session.commit()
    r = await login(env, "other@example.com")
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    audit = await env.admin.get("/v2/audit-logs", params={"filter[action]": "developer.authenticate"})
    throttled = [e for e in audit.json()["data"] if e["status_code"] == 429]
    assert len(throttled) == 2 and all(e["outcome"] == "failure" for e in throttled)


async def test_sign_up_and_forgot_password_are_throttled_per_ip(portal_env: PortalEnv):
    env = portal_env
    for i in range(10):
        r = await env.client.post("/api/v2/developer", json={"email": f"s{i}@example.com", "full_name": "S"})
        assert r.status_code == 201
    r = await env.client.post("/api/v2/developer", json={"email": "s10@example.com", "full_name": "S"})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 3000  # the hour window
    for _ in range(10):
        assert (
            await env.client.post("/api/v2/developer/forgot-password", json={"email": "a@example.com"})
        ).status_code == 200
    r = await env.client.post("/api/v2/developer/forgot-password", json={"email": "a@example.com"})
    assert r.status_code == 429
    assert "Retry-After" in r.headers


async def test_csrf_rules(portal_env: PortalEnv):
    env = portal_env
    await set_portal(env, auto_approve_developers=True, custom_client_domain="client.example.com")
    await sign_up_and_verify(env, "csrf@example.com")
    r = await login(env, "csrf@example.com")
    access, refresh_token = r.cookies["portalaccesstoken"], r.cookies["portalrefreshtoken"]
    env.client.cookies.clear()

    # cookie-authenticated writes without X-Requested-With → 403
    r = await env.client.post("/api/v2/developer/logout", headers=jar(portalaccesstoken=access))
    assert r.status_code == 403
    assert r.json()["detail"].startswith("CSRF check failed: ")
    r = await env.client.post("/api/v2/developer/refresh", headers=jar(portalrefreshtoken=refresh_token))
    assert r.status_code == 403
    # with the header but a foreign Origin → 403
    r = await env.client.post(
        "/api/v2/developer/refresh",
        headers={**jar(portalrefreshtoken=refresh_token), **XRW, "Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    assert "CSRF check failed" in r.json()["detail"]
    # the portal's own origin and the custom_client_domain pass
    r = await env.client.post(
        "/api/v2/developer/refresh",
        headers={**jar(portalrefreshtoken=refresh_token), **XRW, "Origin": "https://client.example.com"},
    )
    assert r.status_code == 204, r.text
    access = r.cookies["portalaccesstoken"]
    env.client.cookies.clear()
    # unauthenticated POSTs with a foreign Origin are refused; same-origin and no Origin pass
    r = await env.client.post(
        "/api/v2/developer",
        json={"email": "x@example.com", "full_name": "X"},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    r = await env.client.post(
        "/api/v2/developer/authenticate",
        json={"username": "csrf@example.com", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    r = await env.client.post(
        "/api/v2/developer", json={"email": "x@example.com", "full_name": "X"}, headers={"Origin": "http://testserver"}
    )
    assert r.status_code == 201
    # Bearer-authenticated calls are exempt from the header rule
    r = await env.client.post("/api/v2/developer/logout", headers={"Authorization": f"Bearer {access}"})
    assert r.status_code == 204


def _cookie_attrs(header: str) -> dict[str, str]:
    parts = [p.strip() for p in header.split(";")]
    out = {"_": parts[0]}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        out[k.lower()] = v
    return out


@pytest.mark.parametrize("dev_mode", [True, False])
async def test_session_cookie_attributes(portal_env: PortalEnv, dev_mode: bool):
    env = portal_env
    if not dev_mode:
        use_settings(env.runtime, public_url="https://portal.example.com")
    await set_portal(env, auto_approve_developers=True)
    await sign_up_and_verify(env, "cookie@example.com")
    r = await login(env, "cookie@example.com")
    assert r.status_code == 204
    headers = {h.split("=", 1)[0]: _cookie_attrs(h) for h in r.headers.get_list("set-cookie")}
    access, refresh_cookie = headers["portalaccesstoken"], headers["portalrefreshtoken"]
    assert access["path"] == "/" and access["max-age"] == "3600"
    # Path=/ so that the portal pages can renew an expired access token (portal-api.md §1, §8)
    assert refresh_cookie["path"] == "/" and refresh_cookie["max-age"] == str(14 * 86400)
    for c in (access, refresh_cookie):
        assert "httponly" in c
        assert c["samesite"].lower() == "lax"
        assert ("secure" in c) is (not dev_mode)
    if not dev_mode:
        # links in mails follow KEYSTILE_PUBLIC_URL
        assert "https://portal.example.com/verify-email?token=" in env.mails()[0].get_content()


async def test_custom_client_domain_makes_cookies_samesite_none(portal_env: PortalEnv):
    env = portal_env
    await set_portal(env, auto_approve_developers=True, custom_client_domain="client.example.com")
    await sign_up_and_verify(env, "cross@example.com")
    r = await login(env, "cross@example.com")
    for h in r.headers.get_list("set-cookie"):
        attrs = _cookie_attrs(h)
        assert attrs["samesite"].lower() == "none"
        assert "secure" in attrs  # browsers refuse SameSite=None without Secure


async def test_refresh_token_reuse_ends_every_session(portal_env: PortalEnv):
    env = portal_env
    await set_portal(env, auto_approve_developers=True)
    await sign_up_and_verify(env, "reuse@example.com")
    first = await login(env, "reuse@example.com")
    other = await login(env, "reuse@example.com")  # a second session (another browser)
    env.client.cookies.clear()
    old_refresh = first.cookies["portalrefreshtoken"]
    rotated = await env.client.post("/api/v2/developer/refresh", headers={**XRW, **jar(portalrefreshtoken=old_refresh)})
    assert rotated.status_code == 204
    env.client.cookies.clear()
    await age_rotations(env, developers.REFRESH_REUSE_GRACE + timedelta(seconds=1))
    reused = await env.client.post("/api/v2/developer/refresh", headers={**XRW, **jar(portalrefreshtoken=old_refresh)})
    assert reused.status_code == 401
    env.client.cookies.clear()
    for token in (rotated.cookies["portalaccesstoken"], other.cookies["portalaccesstoken"]):
        r = await env.client.get("/api/v2/developer/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
    r = await env.client.post(
        "/api/v2/developer/refresh", headers={**XRW, **jar(portalrefreshtoken=rotated.cookies["portalrefreshtoken"])}
    )
    assert r.status_code == 401


async def age_rotations(env: PortalEnv, by: timedelta) -> None:
    """Move every refresh-token rotation `by` into the past."""
    async with env.runtime.sessions() as session:
        spent = await session.execute(
            select(DeveloperToken).where(DeveloperToken.kind == "refresh", DeveloperToken.used_at.is_not(None))
        )
        for row in spent.scalars():
            row.used_at -= by
        await session.commit()


async def refresh_with(env: PortalEnv, token: str):
    env.client.cookies.clear()
    return await env.client.post("/api/v2/developer/refresh", headers={**XRW, **jar(portalrefreshtoken=token)})


async def test_a_rotated_token_presented_again_within_the_grace_gets_the_same_session(portal_env: PortalEnv):
    """Tabs (or replicas) racing on one refresh cookie: the late one gets the session the rotation made, not the
    reuse rule; nothing is ended, the successor is kept only as vault ciphertext, and housekeeping drops it later."""
    env = portal_env
    await set_portal(env, auto_approve_developers=True)
    await sign_up_and_verify(env, "tabs@example.com")
    first = await login(env, "tabs@example.com")
    other = await login(env, "tabs@example.com")
    old_refresh = first.cookies["portalrefreshtoken"]
    rotated = await refresh_with(env, old_refresh)
    again = await refresh_with(env, old_refresh)
    assert rotated.status_code == again.status_code == 204
    for name in ("portalaccesstoken", "portalrefreshtoken"):
        assert again.cookies[name] == rotated.cookies[name]
    env.client.cookies.clear()
    for token in (rotated.cookies["portalaccesstoken"], other.cookies["portalaccesstoken"]):
        r = await env.client.get("/api/v2/developer/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
    async with env.runtime.sessions() as session:
        spent = (
            await session.execute(
                select(DeveloperToken).where(DeveloperToken.kind == "refresh", DeveloperToken.used_at.is_not(None))
            )
        ).scalar_one()
    sealed = spent.secrets["successor"]
    assert rotated.cookies["portalaccesstoken"] not in sealed and rotated.cookies["portalrefreshtoken"] not in sealed
    assert sealed.startswith("ks1:")  # a vault ciphertext bound to this row
    # past the grace the successor is swept; the developer's session itself lives on
    await age_rotations(env, developers.REFRESH_REUSE_GRACE + timedelta(seconds=1))
    assert (await housekeeping.run_once(env.runtime))["refresh_successors"] == 1
    async with env.runtime.sessions() as session:
        assert (await session.get(DeveloperToken, spent.id)).secrets is None
    assert (await refresh_with(env, rotated.cookies["portalrefreshtoken"])).status_code == 204


async def test_within_the_grace_a_token_whose_successor_was_used_is_reuse(portal_env: PortalEnv):
    env = portal_env
    await set_portal(env, auto_approve_developers=True)
    await sign_up_and_verify(env, "chain@example.com")
    first = await login(env, "chain@example.com")
    old_refresh = first.cookies["portalrefreshtoken"]
    rotated = await refresh_with(env, old_refresh)
    assert (await refresh_with(env, rotated.cookies["portalrefreshtoken"])).status_code == 204
    assert (await refresh_with(env, old_refresh)).status_code == 401  # its session was rotated on: a stolen token
    env.client.cookies.clear()
    async with env.runtime.sessions() as session:
        left = await session.execute(select(DeveloperToken).where(DeveloperToken.kind.in_(("access", "refresh"))))
        assert left.scalars().all() == []


async def test_public_portal_has_no_accounts(portal_env: PortalEnv):
    env = portal_env
    await set_portal(env, is_public=True)
    expected = "This portal is public and has no developer accounts"
    for path, body in (
        ("/api/v2/developer", {"email": "p@example.com", "full_name": "P"}),
        ("/api/v2/developer/authenticate", {"username": "p@example.com", "password": PASSWORD}),
        ("/api/v2/developer/verify-email", {"token": str(uuid.uuid4())}),
        ("/api/v2/developer/forgot-password", {"email": "p@example.com"}),
    ):
        r = await env.client.post(path, json=body)
        assert r.status_code == 403, path
        assert r.json()["detail"] == expected
    assert (await env.client.get("/api/v2/developer/me")).status_code == 403
    info = await env.client.get("/api/v2/portal")
    assert info.status_code == 200
    assert info.json()["is_public"] is True
    assert info.json()["portal_id"] == str(env.portal_id)
    assert info.json()["basic_auth_enabled"] is True and info.json()["oidc_auth_enabled"] is False


async def test_portal_is_picked_by_host(portal_env: PortalEnv):
    env = portal_env
    async with env.runtime.sessions() as session:
        other = Portal(id=uuid.uuid4(), name="partners", display_name="Partners", custom_domain="partners.example.com")
        session.add(other)
        await session.commit()
    r = await env.client.get("/api/v2/portal", headers={"Host": "partners.example.com:8443"})
    assert r.json()["portal_id"] == str(other.id)
    assert r.json()["name"] == "Partners"
    assert (await env.client.get("/api/v2/portal")).json()["portal_id"] == str(env.portal_id)
    # a developer of one portal is unknown in another
    await set_portal(env, auto_approve_developers=True)
    await sign_up_and_verify(env, "default-only@example.com")
    r = await login(env, "default-only@example.com")
    token = r.cookies["portalaccesstoken"]
    env.client.cookies.clear()
    r = await env.client.get(
        "/api/v2/developer/me", headers={"Authorization": f"Bearer {token}", "Host": "partners.example.com"}
    )
    assert r.status_code == 401
    # mails of that portal link to its custom domain
    await env.client.post(
        "/api/v2/developer", json={"email": "p@example.com", "full_name": "P"}, headers={"Host": "partners.example.com"}
    )
    assert "https://partners.example.com/verify-email?token=" in env.mails()[-1].get_content()


async def test_logins_and_account_actions_are_audited(portal_env: PortalEnv):
    env = portal_env
    await set_portal(env, auto_approve_developers=True)
    await sign_up_and_verify(env, "audit@example.com")
    await login(env, "audit@example.com", "wrong password!!")
    await login(env, "audit@example.com")
    r = await env.admin.get("/v2/audit-logs", params={"filter[actor_type]": "developer", "page[size]": 100})
    assert r.status_code == 200
    events = r.json()["data"]
    actions = [(e["action"], e["outcome"]) for e in events]
    for expected in (
        ("developer.register", "success"),
        ("developer.verify_email", "success"),
        ("developer.reset_password", "success"),
        ("developer.authenticate", "failure"),
        ("developer.authenticate", "success"),
    ):
        assert expected in actions, actions
    failure = next(e for e in events if e["action"] == "developer.authenticate" and e["outcome"] == "failure")
    assert failure["status_code"] == 401
    assert failure["actor"]["type"] == "developer"
    assert PASSWORD not in str(events) and "wrong password" not in str(events)


async def test_mail_dropped_without_transport_is_logged(portal_env: PortalEnv, caplog: pytest.LogCaptureFixture):
    env = portal_env
    use_settings(env.runtime, mail_outbox=None)
    with caplog.at_level("WARNING", logger="keystile.services.mail"):
        r = await env.client.post("/api/v2/developer", json={"email": "drop@example.com", "full_name": "D"})
    assert r.status_code == 201
    assert any("dropped" in rec.getMessage() and "KEYSTILE_SMTP_URL" in rec.getMessage() for rec in caplog.records)
    assert all("token" not in rec.getMessage() for rec in caplog.records)


async def test_unknown_email_costs_one_password_verification(portal_env: PortalEnv):
    """No timing difference between unknown and known emails: both run exactly one argon2id verification."""
    env = portal_env
    calls: list[str] = []

    class CountingHasher(PasswordHasher):
        def verify(self, hash, password):
            calls.append(hash)
            return super().verify(hash, password)

    env.runtime.extras["password_hasher"] = CountingHasher(time_cost=1, memory_cost=1024, parallelism=1)
    await set_portal(env, auto_approve_developers=True)
    await sign_up_and_verify(env, "timing@example.com")
    await login(env, "nobody@example.com", "whatever password")
    await login(env, "timing@example.com", "whatever password")
    assert len(calls) == 2
    assert all(h.startswith("$argon2id$") for h in calls)
    async with env.runtime.sessions() as session:
        stored = (
            await session.execute(select(Developer.password_hash).where(Developer.email == "timing@example.com"))
        ).scalar_one()
    assert stored.startswith("$argon2id$") and calls[1] == stored and calls[0] != stored


async def test_old_throttle_events_do_not_count(portal_env: PortalEnv):
    env = portal_env
    async with env.runtime.unit(SYSTEM) as ctx:
        for _ in range(10):
            ctx.session.add(ThrottleEvent(key="signup:ip:127.0.0.1", created_at=utcnow() - timedelta(hours=2)))
        await ctx.session.commit()
    r = await env.client.post("/api/v2/developer", json={"email": "fine@example.com", "full_name": "F"})
    assert r.status_code == 201
    async with env.runtime.sessions() as session:
        keys = (
            await session.execute(select(ThrottleEvent.created_at).where(ThrottleEvent.key == "signup:ip:127.0.0.1"))
        ).all()
    assert len(keys) == 11  # counted, not yet pruned (kept a day)


async def test_cors_only_for_the_custom_client_domain(portal_env: PortalEnv):
    env = portal_env
    await set_portal(env, auto_approve_developers=True, custom_client_domain="client.example.com")
    preflight = {
        "Origin": "https://client.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type, X-Requested-With, X-Evil",
    }
    r = await env.client.options("/api/v2/developer/authenticate", headers=preflight)
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "https://client.example.com"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert r.headers["Access-Control-Allow-Headers"] == "content-type, x-requested-with"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    r = await env.client.options(
        "/api/v2/developer/authenticate", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert r.status_code == 403
    assert "Access-Control-Allow-Origin" not in r.headers
    # actual requests: the client domain may read answers (credentials included), others get no CORS headers
    r = await env.client.get("/api/v2/portal", headers={"Origin": "https://client.example.com"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://client.example.com"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in r.headers["Vary"]
    r = await env.client.get("/api/v2/portal", headers={"Origin": "https://evil.example"})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    # a portal without custom_client_domain grants CORS to nobody
    await set_portal(env, custom_client_domain=None)
    r = await env.client.options("/api/v2/developer/authenticate", headers=preflight)
    assert r.status_code == 403
    # the management API is never CORS-enabled
    r = await env.client.get("/v2/portals", headers={"Origin": "https://client.example.com"})
    assert "Access-Control-Allow-Origin" not in r.headers
