"""The built-in IdP over real HTTP (the `keystile idp` subprocess of the `builtin_idp` fixture): discovery,
registration with initial access tokens, client credentials with JWT access tokens, RFC 7592 management with
secret and RAT rotation, and RFC 7662 introspection.
"""

from __future__ import annotations

import os
import stat
import time

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from joserfc import jwt
from joserfc.jwk import KeySet

from keystile.oidc.tokens import JsonWebKey, parse_unverified, verify_jwt
from tests.fixtures.builtin_idp import EXTRA_AUDIENCE

MACHINE = {
    "client_name": "Orders (ks-3f2a9c0d11e4)",
    "grant_types": ["client_credentials"],
    "response_types": [],
    "token_endpoint_auth_method": "client_secret_basic",
    "scope": "read",
}


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


async def register(http, idp, iat, **overrides):
    body = {**MACHINE, **overrides}
    response = await http.post(f"{idp.issuer}/register", json=body, headers={"Authorization": f"Bearer {iat}"})
    assert response.status_code == 201, response.text
    return response.json()


async def token(http, idp, client_id, client_secret, **form):
    return await http.post(
        f"{idp.issuer}/token", data={"grant_type": "client_credentials", **form}, auth=(client_id, client_secret)
    )


async def jwks(http, idp) -> KeySet:
    response = await http.get(f"{idp.issuer}/jwks")
    assert response.status_code == 200
    return KeySet.import_key_set(response.json())


# -- start-up and discovery ---------------------------------------------------------------------------------


def test_start_prints_issuer_and_writes_private_facts_file(builtin_idp):
    facts_path = builtin_idp.data_dir / "idp.json"
    assert builtin_idp.issuer in builtin_idp.first_line
    assert "development IdP" in builtin_idp.first_line
    assert stat.S_IMODE(facts_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((builtin_idp.data_dir / "keys.json").stat().st_mode) == 0o600
    assert builtin_idp.issuer.startswith("http://127.0.0.1:")
    assert builtin_idp.api_audience == "urn:keystile:api"
    assert builtin_idp.rotating_iat == builtin_idp.raw["initial_access_token"]
    assert builtin_idp.plain_iat != builtin_idp.rotating_iat
    os.kill(builtin_idp.pid, 0)


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"])
async def test_discovery_documents(http, builtin_idp, path):
    response = await http.get(f"{builtin_idp.issuer}{path}")
    document = response.json()
    assert response.status_code == 200
    issuer = builtin_idp.issuer
    assert document["issuer"] == issuer
    assert document["token_endpoint"] == f"{issuer}/token"
    assert document["jwks_uri"] == f"{issuer}/jwks"
    assert document["registration_endpoint"] == f"{issuer}/register"
    assert document["introspection_endpoint"] == f"{issuer}/introspect"
    assert document["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]
    assert document["grant_types_supported"] == ["client_credentials"]
    assert document["scopes_supported"] == ["read", "write", "dcr"]
    assert document["response_types_supported"] == []  # no authorization endpoint
    # RFC 8414 §2 by Authlib's validator (loopback http allowed); it reads an empty response_types_supported
    # as missing, so that one key is checked above instead
    metadata = AuthorizationServerMetadata(document)
    for key in AuthorizationServerMetadata.REGISTRY_KEYS:
        if key != "response_types_supported":
            getattr(metadata, f"validate_{key}")()


async def test_jwks_publishes_rs256_public_keys_only(http, builtin_idp):
    response = await http.get(f"{builtin_idp.issuer}/jwks")
    keys = response.json()["keys"]
    assert response.status_code == 200
    assert len(keys) == 1
    assert keys[0]["kty"] == "RSA"
    assert keys[0]["alg"] == "RS256"
    assert keys[0]["use"] == "sig"
    assert keys[0]["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(keys[0])


# -- registration (RFC 7591) ----------------------------------------------------------------------------------


async def test_register_without_iat_is_401_invalid_token(http, builtin_idp):
    response = await http.post(f"{builtin_idp.issuer}/register", json=MACHINE)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.headers["www-authenticate"].startswith("Bearer ")


async def test_register_with_unknown_iat_is_401_invalid_token(http, builtin_idp):
    response = await http.post(
        f"{builtin_idp.issuer}/register", json=MACHINE, headers={"Authorization": "Bearer not-a-known-token-at-all"}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


async def test_register_with_static_iat_returns_client_and_management_handles(http, builtin_idp):
    body = await register(http, builtin_idp, builtin_idp.plain_iat)
    assert body["client_id"]
    assert len(body["client_secret"]) >= 32
    assert body["client_secret_expires_at"] == 0
    assert body["registration_client_uri"] == f"{builtin_idp.issuer}/register/{body['client_id']}"
    assert body["registration_access_token"]
    assert body["response_types"] == []
    assert body["grant_types"] == ["client_credentials"]
    assert body["scope"] == "read"
    assert body["client_name"] == MACHINE["client_name"]
    # the static token stays usable
    again = await register(http, builtin_idp, builtin_idp.plain_iat)
    assert again["client_id"] != body["client_id"]


async def test_register_without_empty_response_types_needs_redirect_uris(http, builtin_idp):
    body = {k: v for k, v in MACHINE.items() if k != "response_types"}
    response = await http.post(
        f"{builtin_idp.issuer}/register", json=body, headers={"Authorization": f"Bearer {builtin_idp.plain_iat}"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_redirect_uri"


async def test_register_refuses_what_a_machine_only_idp_cannot_do(http, builtin_idp):
    headers = {"Authorization": f"Bearer {builtin_idp.plain_iat}"}
    cases = [
        {"grant_types": ["authorization_code", "client_credentials"], "response_types": [],
         "redirect_uris": ["https://app.example/cb"]},
        {"grant_types": ["client_credentials"], "response_types": ["code"], "redirect_uris": ["https://app.example/cb"]},
        {"grant_types": ["implicit"], "response_types": ["token"], "redirect_uris": ["https://app.example/cb"]},
        {"grant_types": ["password"]},
        {"scope": "read admin"},
        {"scope": "dcr"},
        {"token_endpoint_auth_method": "none"},
    ]  # fmt: skip
    for case in cases:
        response = await http.post(f"{builtin_idp.issuer}/register", json={**MACHINE, **case}, headers=headers)
        assert response.status_code == 400, case
        assert response.json()["error"] == "invalid_client_metadata", case


async def test_a_client_with_a_redirect_uri_is_recorded_and_uses_client_credentials(http, builtin_idp):
    body = await register(
        http,
        builtin_idp,
        builtin_idp.rotating_iat,
        grant_types=["authorization_code", "client_credentials"],
        response_types=["code"],
        redirect_uris=["https://shop.example/callback"],
    )
    assert body["grant_types"] == ["authorization_code", "client_credentials"]
    assert body["response_types"] == ["code"]
    assert body["redirect_uris"] == ["https://shop.example/callback"]
    response = await token(http, builtin_idp, body["client_id"], body["client_secret"])
    assert response.status_code == 200
    bad_uri = await http.post(
        f"{builtin_idp.issuer}/register",
        json={**MACHINE, "grant_types": ["authorization_code"], "response_types": ["code"], "redirect_uris": ["x"]},
        headers={"Authorization": f"Bearer {builtin_idp.rotating_iat}"},
    )
    assert bad_uri.status_code == 400
    assert bad_uri.json()["error"] == "invalid_redirect_uri"


async def test_minted_iat_is_single_use(http, builtin_idp):
    minted = await token(http, builtin_idp, builtin_idp.admin_client_id, builtin_idp.admin_client_secret, scope="dcr")
    assert minted.status_code == 200
    iat = minted.json()["access_token"]
    assert minted.json()["scope"] == "dcr"
    assert jwt.decode(iat, await jwks(http, builtin_idp)).claims["aud"] == builtin_idp.issuer

    await register(http, builtin_idp, iat)
    reused = await http.post(f"{builtin_idp.issuer}/register", json=MACHINE, headers={"Authorization": f"Bearer {iat}"})
    assert reused.status_code == 401
    assert reused.json()["error"] == "invalid_token"


async def test_only_the_admin_client_mints_iats(http, builtin_idp):
    client = await register(http, builtin_idp, builtin_idp.plain_iat)
    as_client = await token(http, builtin_idp, client["client_id"], client["client_secret"], scope="dcr")
    as_admin_for_api = await token(
        http, builtin_idp, builtin_idp.admin_client_id, builtin_idp.admin_client_secret, scope="read"
    )
    api_token = (await token(http, builtin_idp, client["client_id"], client["client_secret"])).json()["access_token"]
    with_api_token = await http.post(
        f"{builtin_idp.issuer}/register", json=MACHINE, headers={"Authorization": f"Bearer {api_token}"}
    )
    assert as_client.status_code == 400
    assert as_client.json()["error"] == "invalid_scope"
    assert as_admin_for_api.status_code == 400
    assert as_admin_for_api.json()["error"] == "invalid_scope"
    assert with_api_token.status_code == 401


# -- token endpoint and JWT access tokens (RFC 6749 §4.4, RFC 9068) ------------------------------------------


async def test_client_credentials_token_is_an_rfc9068_jwt_verifiable_against_the_jwks(http, builtin_idp):
    client = await register(http, builtin_idp, builtin_idp.plain_iat, scope="read write")
    before = int(time.time())
    response = await token(http, builtin_idp, client["client_id"], client["client_secret"], scope="read")
    body = response.json()
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "read"
    assert body["expires_in"] == 3600

    decoded = jwt.decode(body["access_token"], await jwks(http, builtin_idp), algorithms=["RS256"])
    claims = decoded.claims
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.header["kid"] == (await http.get(f"{builtin_idp.issuer}/jwks")).json()["keys"][0]["kid"]
    assert claims["iss"] == builtin_idp.issuer
    assert claims["sub"] == client["client_id"]
    assert claims["client_id"] == client["client_id"]
    assert claims["cid"] == client["client_id"]
    assert claims["aud"] == builtin_idp.api_audience
    assert claims["scope"] == "read"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 3600
    assert claims["jti"]

    # the gateway's own verifier (keystile.oidc.tokens) accepts it too
    published = (await http.get(f"{builtin_idp.issuer}/jwks")).json()["keys"]
    keys = [JsonWebKey.from_jwk(j) for j in published]
    unverified = parse_unverified(body["access_token"])
    assert unverified is not None
    verified = verify_jwt(
        unverified,
        [k for k in keys if k is not None],
        issuer=builtin_idp.issuer,
        now=time.time(),
        audience=[builtin_idp.api_audience],
        scopes_required=["read"],
    )
    assert verified["client_id"] == client["client_id"]


async def test_default_scope_is_the_registered_scope(http, builtin_idp):
    client = await register(http, builtin_idp, builtin_idp.plain_iat, scope="read write")
    response = await token(http, builtin_idp, client["client_id"], client["client_secret"])
    assert response.status_code == 200
    assert response.json()["scope"] == "read write"


async def test_unregistered_scope_is_invalid_scope(http, builtin_idp):
    client = await register(http, builtin_idp, builtin_idp.plain_iat, scope="read")
    write = await token(http, builtin_idp, client["client_id"], client["client_secret"], scope="write")
    unknown = await token(http, builtin_idp, client["client_id"], client["client_secret"], scope="admin")
    assert write.status_code == 400
    assert write.json()["error"] == "invalid_scope"
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_scope"


async def test_client_secret_post_for_a_client_registered_with_it(http, builtin_idp):
    client = await register(http, builtin_idp, builtin_idp.plain_iat, token_endpoint_auth_method="client_secret_post")
    form = {
        "grant_type": "client_credentials",
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
    }
    by_post = await http.post(f"{builtin_idp.issuer}/token", data=form)
    by_basic = await token(http, builtin_idp, client["client_id"], client["client_secret"])
    assert by_post.status_code == 200
    assert by_post.json()["access_token"].count(".") == 2
    assert by_basic.status_code == 401
    assert by_basic.json()["error"] == "invalid_client"


async def test_resource_or_audience_selects_the_aud(http, builtin_idp):
    client = await register(http, builtin_idp, builtin_idp.plain_iat)
    keys = await jwks(http, builtin_idp)
    cid, secret = client["client_id"], client["client_secret"]

    by_resource = await token(http, builtin_idp, cid, secret, resource=EXTRA_AUDIENCE)
    by_audience = await token(http, builtin_idp, cid, secret, audience=EXTRA_AUDIENCE)
    by_default_named = await token(http, builtin_idp, cid, secret, resource=builtin_idp.api_audience)
    unknown = await token(http, builtin_idp, cid, secret, resource="https://elsewhere.test")
    two = await token(http, builtin_idp, cid, secret, resource=EXTRA_AUDIENCE, audience=builtin_idp.api_audience)

    assert jwt.decode(by_resource.json()["access_token"], keys).claims["aud"] == EXTRA_AUDIENCE
    assert jwt.decode(by_audience.json()["access_token"], keys).claims["aud"] == EXTRA_AUDIENCE
    assert jwt.decode(by_default_named.json()["access_token"], keys).claims["aud"] == builtin_idp.api_audience
    assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_target")
    assert (two.status_code, two.json()["error"]) == (400, "invalid_target")


async def test_wrong_secret_and_unknown_client_are_401_invalid_client(http, builtin_idp):
    client = await register(http, builtin_idp, builtin_idp.plain_iat)
    wrong = await token(http, builtin_idp, client["client_id"], "not-the-secret")
    unknown = await token(http, builtin_idp, "no-such-client", "whatever")
    unsupported = await http.post(
        f"{builtin_idp.issuer}/token",
        data={"grant_type": "password", "username": "u", "password": "p"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert (unknown.status_code, unknown.json()["error"]) == (401, "invalid_client")
    assert (unsupported.status_code, unsupported.json()["error"]) == (400, "unsupported_grant_type")


# -- management (RFC 7592) -------------------------------------------------------------------------------------


async def test_put_rotates_secret_and_registration_access_token(http, builtin_idp):
    client = await register(http, builtin_idp, builtin_idp.rotating_iat)
    uri, old_rat, old_secret = (
        client["registration_client_uri"],
        client["registration_access_token"],
        client["client_secret"],
    )
    update = {**MACHINE, "client_id": client["client_id"], "client_name": "Orders v2 (ks-3f2a9c0d11e4)"}

    put = await http.put(uri, json=update, headers={"Authorization": f"Bearer {old_rat}"})
    body = put.json()
    assert put.status_code == 200
    assert body["client_id"] == client["client_id"]
    assert body["client_name"] == "Orders v2 (ks-3f2a9c0d11e4)"
    assert body["client_secret"] and body["client_secret"] != old_secret
    assert body["registration_access_token"] and body["registration_access_token"] != old_rat
    assert body["registration_client_uri"] == uri

    old = await token(http, builtin_idp, client["client_id"], old_secret)
    new = await token(http, builtin_idp, client["client_id"], body["client_secret"])
    assert (old.status_code, old.json()["error"]) == (401, "invalid_client")
    assert new.status_code == 200

    with_old_rat = await http.get(uri, headers={"Authorization": f"Bearer {old_rat}"})
    with_new_rat = await http.get(uri, headers={"Authorization": f"Bearer {body['registration_access_token']}"})
    assert (with_old_rat.status_code, with_old_rat.json()["error"]) == (401, "invalid_token")
    assert with_new_rat.status_code == 200
    assert with_new_rat.json()["client_name"] == "Orders v2 (ks-3f2a9c0d11e4)"
    assert "client_secret" not in with_new_rat.json()  # only its hash is kept


async def test_put_keeps_the_secret_of_a_client_registered_with_the_plain_iat(http, builtin_idp):
    client = await register(http, builtin_idp, builtin_idp.plain_iat)
    update = {**MACHINE, "client_id": client["client_id"], "client_name": "Renamed"}
    put = await http.put(
        client["registration_client_uri"],
        json=update,
        headers={"Authorization": f"Bearer {client['registration_access_token']}"},
    )
    assert put.status_code == 200
    assert "client_secret" not in put.json()
    assert put.json()["client_name"] == "Renamed"
    assert put.json()["registration_access_token"] != client["registration_access_token"]  # the RAT still rotates
    still = await token(http, builtin_idp, client["client_id"], client["client_secret"])
    assert still.status_code == 200


async def test_put_validates_like_registration(http, builtin_idp):
    client = await register(http, builtin_idp, builtin_idp.plain_iat)
    headers = {"Authorization": f"Bearer {client['registration_access_token']}"}
    bad_scope = await http.put(
        client["registration_client_uri"], json={**MACHINE, "client_id": client["client_id"], "scope": "dcr"},
        headers=headers,
    )  # fmt: skip
    other_id = await http.put(client["registration_client_uri"], json={**MACHINE, "client_id": "x"}, headers=headers)
    assert (bad_scope.status_code, bad_scope.json()["error"]) == (400, "invalid_client_metadata")
    assert (other_id.status_code, other_id.json()["error"]) == (400, "invalid_request")
    # a refused PUT rotates nothing
    still = await http.get(client["registration_client_uri"], headers=headers)
    assert still.status_code == 200
    assert (await token(http, builtin_idp, client["client_id"], client["client_secret"])).status_code == 200


async def test_rat_is_only_valid_for_its_own_client(http, builtin_idp):
    first = await register(http, builtin_idp, builtin_idp.plain_iat)
    second = await register(http, builtin_idp, builtin_idp.plain_iat)
    response = await http.get(
        first["registration_client_uri"], headers={"Authorization": f"Bearer {second['registration_access_token']}"}
    )
    admin = await http.get(
        f"{builtin_idp.issuer}/register/{builtin_idp.admin_client_id}",
        headers={"Authorization": f"Bearer {second['registration_access_token']}"},
    )
    assert (response.status_code, response.json()["error"]) == (401, "invalid_token")
    assert (admin.status_code, admin.json()["error"]) == (401, "invalid_token")


async def test_delete_ends_the_client(http, builtin_idp):
    client = await register(http, builtin_idp, builtin_idp.plain_iat)
    issued = (await token(http, builtin_idp, client["client_id"], client["client_secret"])).json()["access_token"]
    headers = {"Authorization": f"Bearer {client['registration_access_token']}"}

    deleted = await http.delete(client["registration_client_uri"], headers=headers)
    assert deleted.status_code == 204
    assert deleted.content == b""

    after = await token(http, builtin_idp, client["client_id"], client["client_secret"])
    again = await http.delete(client["registration_client_uri"], headers=headers)
    admin = (builtin_idp.admin_client_id, builtin_idp.admin_client_secret)
    introspected = await http.post(f"{builtin_idp.issuer}/introspect", data={"token": issued}, auth=admin)
    assert (after.status_code, after.json()["error"]) == (401, "invalid_client")
    assert (again.status_code, again.json()["error"]) == (401, "invalid_token")
    assert introspected.json() == {"active": False}


# -- introspection (RFC 7662) --------------------------------------------------------------------------------


async def test_introspection_active_and_inactive(http, builtin_idp):
    caller = await register(http, builtin_idp, builtin_idp.plain_iat)
    subject = await register(http, builtin_idp, builtin_idp.plain_iat, scope="read write")
    issued = await token(http, builtin_idp, subject["client_id"], subject["client_secret"], scope="write")
    access_token = issued.json()["access_token"]
    auth = (caller["client_id"], caller["client_secret"])
    url = f"{builtin_idp.issuer}/introspect"

    active = await http.post(url, data={"token": access_token, "token_type_hint": "access_token"}, auth=auth)
    by_post = await http.post(
        url, data={"token": access_token, "client_id": caller["client_id"], "client_secret": caller["client_secret"]}
    )
    garbage = await http.post(url, data={"token": "not-a-token"}, auth=auth)
    header, payload, signature = access_token.split(".")
    tampered = await http.post(url, data={"token": f"{header}.{payload}.{signature[::-1]}"}, auth=auth)
    anonymous = await http.post(url, data={"token": access_token})

    body = active.json()
    assert active.status_code == 200
    assert body["active"] is True
    assert body["client_id"] == body["cid"] == body["sub"] == subject["client_id"]
    assert body["scope"] == "write"
    assert body["aud"] == builtin_idp.api_audience
    assert body["iss"] == builtin_idp.issuer
    assert body["token_type"] == "Bearer"
    assert body["exp"] > body["iat"]
    assert by_post.json()["active"] is True
    assert garbage.json() == {"active": False}
    assert tampered.json() == {"active": False}
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "invalid_client")


async def test_used_minted_iat_introspects_inactive(http, builtin_idp):
    admin = (builtin_idp.admin_client_id, builtin_idp.admin_client_secret)
    iat = (await token(http, builtin_idp, *admin, scope="dcr")).json()["access_token"]
    url = f"{builtin_idp.issuer}/introspect"
    before = await http.post(url, data={"token": iat}, auth=admin)
    await register(http, builtin_idp, iat)
    after = await http.post(url, data={"token": iat}, auth=admin)
    assert before.json()["active"] is True
    assert before.json()["scope"] == "dcr"
    assert after.json() == {"active": False}
