"""Client credentials, bearer JWT, session and introspection against a real loopback IdP (contracts/gateway.md §5)."""

from __future__ import annotations

import asyncio
import base64
import json
import time

from joserfc import jwt

from tests.integration.gateway.conftest import PV_A, PV_B, World, basic
from tests.integration.gateway.servers import FakeIdp, header


async def test_client_credentials_both_encodings_and_cache(world: World, start_gateway, idp: FakeIdp) -> None:
    reg = idp.register()
    world.oidc_app("app-cc", reg.client_id, [PV_A])
    gw = await start_gateway(world.build())
    for encoded in (True, False, True):
        response = await gw.client.get("/a/x", headers={"Authorization": basic(reg, encoded=encoded)})
        assert response.status_code == 200, response.text
        seen = response.json()
        (authz,) = header(seen, "Authorization")
        assert authz.startswith("Bearer ")
        claims = jwt.decode(authz[7:], idp.signing_key).claims
        assert claims["client_id"] == reg.client_id
        assert header(seen, "X-Application-ID") == ["app-cc"]
        assert header(seen, "X-Credential-Identifier") == [reg.client_id]
    assert idp.calls["token"] == 1  # one exchange, then the cache
    (sent,) = idp.token_requests
    assert sent["form"] == {
        "grant_type": "client_credentials",
        "scope": "billing:read",
        "audience": "https://api.example.test",
    }
    expected = "Basic " + base64.b64encode(f"{reg.client_id}:{reg.secret}".encode()).decode()
    assert sent["authorization"] == expected
    assert (await gw.idp_calls()) == {"discovery": 1, "token": 1}


async def test_client_credentials_refusals(world: World, start_gateway, idp: FakeIdp) -> None:
    reg = idp.register()
    other = idp.register()
    none = idp.register()
    world.oidc_app("app-cc", reg.client_id, [PV_A])
    world.oidc_app("app-b", other.client_id, [PV_B])
    world.oidc_app("app-none", none.client_id, [])
    gw = await start_gateway(world.build())
    wrong = await gw.client.get("/a/x", headers={"Authorization": basic(reg, secret="wrong")})
    assert (wrong.status_code, wrong.json()) == (401, {"message": "Unauthorized"})
    assert 'Basic realm="keystile"' in wrong.headers.get_list("www-authenticate")
    calls = idp.calls["token"]
    again = await gw.client.get("/a/x", headers={"Authorization": basic(reg, secret="wrong")})
    assert again.status_code == 401
    assert idp.calls["token"] == calls  # negative cache: no second exchange within 10 s
    assert (await gw.client.get("/a/x", headers={"Authorization": basic(reg)})).status_code == 200
    assert (await gw.client.get("/a/x", headers={"Authorization": basic(other)})).status_code == 403
    assert (await gw.client.get("/b/x", headers={"Authorization": basic(other)})).status_code == 200
    assert (await gw.client.get("/a/x", headers={"Authorization": basic(none)})).status_code == 403
    unknown = idp.register()
    assert (await gw.client.get("/a/x", headers={"Authorization": basic(unknown)})).status_code == 401
    for bad in ("Basic", "Basic nocolon", "Basic :secret", f"Basic {reg.client_id}:"):
        assert (await gw.client.get("/a/x", headers={"Authorization": bad})).status_code == 401


async def test_single_flight_exchange(world: World, start_gateway, idp: FakeIdp) -> None:
    reg = idp.register()
    world.oidc_app("app-cc", reg.client_id, [PV_A])
    gw = await start_gateway(world.build())
    answers = await asyncio.gather(*(gw.client.get("/a/x", headers={"Authorization": basic(reg)}) for _ in range(20)))
    assert [a.status_code for a in answers] == [200] * 20
    assert idp.calls["token"] == 1


async def test_bearer_tokens(world: World, start_gateway, idp: FakeIdp) -> None:
    reg = idp.register()
    other = idp.register()
    world.oidc_app("app-cc", reg.client_id, [PV_A])
    world.oidc_app("app-b", other.client_id, [PV_B])
    gw = await start_gateway(world.build())
    good = idp.mint({"cid": reg.client_id})
    response = await gw.client.get("/a/x", headers={"Authorization": f"Bearer {good}"})
    assert response.status_code == 200, response.text
    assert header(response.json(), "Authorization") == [f"Bearer {good}"]
    assert header(response.json(), "X-Credential-Identifier") == [reg.client_id]
    # the second claim name is an alternative
    assert (
        await gw.client.get("/a/x", headers={"Authorization": f"Bearer {idp.mint({'client_id': reg.client_id})}"})
    ).status_code == 200

    now = int(time.time())
    stranger = FakeIdp()
    stranger.keys.append(idp.signing_key)  # even the same key: the issuer decides
    refused = {
        "expired": idp.mint({"cid": reg.client_id, "exp": now - 120}),
        "foreign issuer": idp.mint({"cid": reg.client_id, "iss": "https://evil.example"}),
        "unknown key": idp.mint({"cid": reg.client_id}, key=_other_key()),
        "no exp": idp.mint({"cid": reg.client_id, "exp": None}),
        "alg none": _unsigned({"iss": idp.issuer, "cid": reg.client_id, "exp": now + 300}),
        "HS256 with the public key": _hs256(idp, {"iss": idp.issuer, "cid": reg.client_id, "exp": now + 300}),
        "tampered": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "not a jwt": "opaque-token-value",
        "unknown app": idp.mint({"cid": "nobody"}),
    }
    introspection_off = World(
        upstream=world.upstream, issuer=world.issuer, apps=world.apps, registrations=world.registrations
    )
    introspection_off.auth_methods = ["client_credentials", "bearer", "session"]
    introspection_off.version = 2
    gw.config_path.write_text(json.dumps(introspection_off.build()))
    assert gw.node.reload()
    for name, token in refused.items():
        answer = await gw.client.get("/a/x", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, name
        challenges = answer.headers.get_list("www-authenticate")
        assert any(c.startswith('Bearer realm="keystile", error="invalid_token"') for c in challenges), name
    assert (
        await gw.client.get("/a/x", headers={"Authorization": f"Bearer {idp.mint({'cid': other.client_id})}"})
    ).status_code == 403
    assert (
        await gw.client.get("/b/x", headers={"Authorization": f"Bearer {idp.mint({'cid': other.client_id})}"})
    ).status_code == 200


async def test_bearer_audience_and_scopes(world: World, start_gateway, idp: FakeIdp) -> None:
    reg = idp.register()
    world.oidc_app("app-cc", reg.client_id, [PV_A])
    world.oidc_settings = {"audience": ["https://api.example.test"], "scopes_required": ["billing:read"]}
    gw = await start_gateway(world.build())
    ok = idp.mint({"cid": reg.client_id, "aud": ["x", "https://api.example.test"], "scope": "a billing:read"})
    scp = idp.mint({"cid": reg.client_id, "aud": "https://api.example.test", "scp": ["billing:read"]})
    wrong_aud = idp.mint({"cid": reg.client_id, "aud": "https://other", "scope": "billing:read"})
    no_scope = idp.mint({"cid": reg.client_id, "aud": "https://api.example.test", "scope": "billing:write"})
    assert (await gw.client.get("/a/x", headers={"Authorization": f"Bearer {ok}"})).status_code == 200
    assert (await gw.client.get("/a/x", headers={"Authorization": f"Bearer {scp}"})).status_code == 200
    assert (await gw.client.get("/a/x", headers={"Authorization": f"Bearer {wrong_aud}"})).status_code == 401
    assert (await gw.client.get("/a/x", headers={"Authorization": f"Bearer {no_scope}"})).status_code == 401


async def test_key_rotation_fails_no_request(world: World, start_gateway, idp: FakeIdp) -> None:
    reg = idp.register()
    world.oidc_app("app-cc", reg.client_id, [PV_A])
    gw = await start_gateway(world.build())
    statuses = []
    old_tokens = [idp.mint({"cid": reg.client_id}) for _ in range(3)]
    for token in old_tokens:
        statuses.append((await gw.client.get("/a/x", headers={"Authorization": f"Bearer {token}"})).status_code)
    idp.rotate()  # the IdP publishes k2 and signs with it; k1 stays published until its tokens expire
    for _ in range(5):
        token = idp.mint({"cid": reg.client_id})
        statuses.append((await gw.client.get("/a/x", headers={"Authorization": f"Bearer {token}"})).status_code)
    for token in old_tokens:
        statuses.append((await gw.client.get("/a/x", headers={"Authorization": f"Bearer {token}"})).status_code)
    new_old = idp.mint({"cid": reg.client_id}, key=idp.keys[0])  # a fresh token under the still-published k1
    statuses.append((await gw.client.get("/a/x", headers={"Authorization": f"Bearer {new_old}"})).status_code)
    assert statuses == [200] * 12
    assert idp.calls["jwks"] == 2  # first use, then one kid-miss refetch


async def test_idp_down_cached_keep_working_uncached_get_503(world: World, start_gateway, idp: FakeIdp) -> None:
    reg = idp.register()
    late = idp.register()
    world.oidc_app("app-cc", reg.client_id, [PV_A])
    world.oidc_app("app-late", late.client_id, [PV_A])
    gw = await start_gateway(world.build())
    token = idp.mint({"cid": reg.client_id})
    assert (await gw.client.get("/a/x", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    assert (await gw.client.get("/a/x", headers={"Authorization": basic(reg)})).status_code == 200
    await idp.stop()
    for _ in range(3):
        assert (await gw.client.get("/a/x", headers={"Authorization": f"Bearer {token}"})).status_code == 200
        assert (await gw.client.get("/a/x", headers={"Authorization": basic(reg)})).status_code == 200
    # a new token signed with the published key still verifies from the cached JWKS
    fresh = idp.mint({"cid": late.client_id})
    assert (await gw.client.get("/a/x", headers={"Authorization": f"Bearer {fresh}"})).status_code == 200
    uncached = await gw.client.get("/a/x", headers={"Authorization": basic(late)})
    assert (uncached.status_code, uncached.json()) == (503, {"message": "Identity provider unavailable"})
    assert uncached.headers["retry-after"] == "5"
    await idp.start()
    assert (await gw.client.get("/a/x", headers={"Authorization": basic(late)})).status_code == 200


async def test_idp_overloaded_gives_its_retry_after(world: World, start_gateway, idp: FakeIdp) -> None:
    reg = idp.register()
    world.oidc_app("app-cc", reg.client_id, [PV_A])
    gw = await start_gateway(world.build())
    idp.token_status = 429
    answer = await gw.client.get("/a/x", headers={"Authorization": basic(reg)})
    assert (answer.status_code, answer.headers["retry-after"]) == (503, "7")


async def test_session_cookie(world: World, start_gateway, idp: FakeIdp) -> None:
    reg = idp.register()
    world.oidc_app("app-cc", reg.client_id, [PV_A])
    gw = await start_gateway(world.build())
    first = await gw.client.get("/a/x", headers={"Authorization": basic(reg)})
    assert first.status_code == 200
    set_cookie = first.headers["set-cookie"]
    assert set_cookie.startswith("session=v1.")
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie and "Path=/" in set_cookie
    assert "Max-Age=" in set_cookie and "Secure" not in set_cookie  # --insecure-cookies in these tests
    cookie = set_cookie.split(";", 1)[0].split("=", 1)[1]
    gw.client.cookies.clear()
    again = await gw.client.get("/a/x", headers={"Cookie": f"other=1; session={cookie}"})
    assert again.status_code == 200
    seen = again.json()
    assert header(seen, "Authorization") == [header(first.json(), "Authorization")[0]]
    assert header(seen, "Cookie") == ["other=1"]
    assert header(seen, "X-Application-ID") == ["app-cc"]
    tampered = cookie[:-3] + ("aaa" if not cookie.endswith("aaa") else "bbb")
    bad = await gw.client.get("/a/x", headers={"Cookie": f"session={tampered}"})
    assert bad.status_code == 401
    assert bad.headers["set-cookie"].startswith("session=; Max-Age=0")


async def test_introspection_for_opaque_tokens(world: World, start_gateway, idp: FakeIdp) -> None:
    reg = idp.register()
    world.oidc_app("app-cc", reg.client_id, [PV_A])
    gw = await start_gateway(world.build())
    idp.opaque["opaque-1"] = {"active": True, "client_id": reg.client_id, "exp": int(time.time()) + 60}
    for _ in range(2):
        assert (await gw.client.get("/a/x", headers={"Authorization": "Bearer opaque-1"})).status_code == 200
    assert idp.calls["introspect"] == 1
    assert (await gw.client.get("/a/x", headers={"Authorization": "Bearer opaque-2"})).status_code == 401


async def test_warm_requests_make_no_idp_calls(world: World, start_gateway, idp: FakeIdp) -> None:
    reg = idp.register()
    world.oidc_app("app-cc", reg.client_id, [PV_A])
    gw = await start_gateway(world.build())
    token = idp.mint({"cid": reg.client_id})
    await gw.client.get("/a/x", headers={"Authorization": f"Bearer {token}"})
    await gw.client.get("/a/x", headers={"Authorization": basic(reg)})
    before = await gw.idp_calls()
    for _ in range(20):
        await gw.client.get("/a/x", headers={"Authorization": f"Bearer {token}"})
        await gw.client.get("/a/x", headers={"Authorization": basic(reg)})
    assert await gw.idp_calls() == before


def _other_key():
    from joserfc.jwk import RSAKey

    return RSAKey.generate_key(2048, parameters={"kid": "k1"})  # same kid as the IdP's, different key


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _unsigned(claims: dict) -> str:
    return f"{_b64({'alg': 'none', 'kid': 'k1'})}.{_b64(claims)}."


def _hs256(idp: FakeIdp, claims: dict) -> str:
    """The classic confusion attack: HMAC keyed with the IdP's public key PEM."""
    import hashlib
    import hmac

    signing_input = f"{_b64({'alg': 'HS256', 'kid': 'k1'})}.{_b64(claims)}"
    mac = hmac.new(idp.signing_key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
