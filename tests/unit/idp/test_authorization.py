"""The authorization server's own rules: audience selection, verification of its tokens, metadata."""

from __future__ import annotations

import time

import pytest
from authlib.oauth2.rfc6749 import InvalidScopeError
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from keystile.idp.authorization import IdpAuthorizationServer, InvalidTargetError, server_metadata
from keystile.idp.config import IdpConfig
from keystile.idp.keys import KeyRing
from keystile.idp.models import IdpClient
from keystile.idp.store import DB_FILE, ClientRow, IdpStore

ISSUER = "http://127.0.0.1:9400"


@pytest.fixture
def server(tmp_path) -> IdpAuthorizationServer:
    config = IdpConfig(data_dir=tmp_path, issuer=ISSUER, api_audience="urn:api", audiences=("urn:orders",))
    return IdpAuthorizationServer(config, IdpStore(tmp_path / DB_FILE), KeyRing(tmp_path, config.access_token_ttl))


def client(scope: str = "read", admin: bool = False) -> IdpClient:
    return IdpClient(ClientRow("c1", "h", None, {"scope": scope}, 1, admin))


def sign(server: IdpAuthorizationServer, claims: dict, key_set: KeySet | None = None) -> str:
    return jwt.encode({"alg": "RS256", "typ": "at+jwt"}, claims, key_set or server.keyring.signing_key_set())


def base_claims(**overrides) -> dict:
    now = int(time.time())
    return {"iss": ISSUER, "jti": "j1", "iat": now, "exp": now + 600, "client_id": "c1", **overrides}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, "urn:api"),
        ({"resource": ["urn:orders"]}, "urn:orders"),
        ({"audience": ["urn:orders"]}, "urn:orders"),
        ({"resource": ["urn:api"], "audience": ["urn:api"]}, "urn:api"),
    ],
)
def test_audience_selection(server, params, expected):
    assert server.select_audience(client(), ["read"], params) == expected


@pytest.mark.parametrize(
    "params",
    [{"resource": ["urn:elsewhere"]}, {"resource": ["urn:api", "urn:orders"]}, {"resource": [ISSUER]}],
)
def test_unknown_or_several_audiences_are_invalid_target(server, params):
    with pytest.raises(InvalidTargetError) as caught:
        server.select_audience(client(), ["read"], params)
    assert caught.value.error == "invalid_target"


def test_a_dcr_token_is_for_the_issuer_alone(server):
    admin = client("dcr", admin=True)
    assert server.select_audience(admin, ["dcr"], {}) == ISSUER
    assert server.select_audience(admin, ["dcr"], {"resource": [ISSUER]}) == ISSUER
    with pytest.raises(InvalidTargetError):
        server.select_audience(admin, ["dcr"], {"resource": ["urn:api"]})
    with pytest.raises(InvalidScopeError):
        server.select_audience(admin, ["dcr", "read"], {})


def test_verify_access_token_accepts_its_own_tokens_only(server):
    assert server.verify_access_token(sign(server, base_claims()))["jti"] == "j1"
    assert server.verify_access_token(sign(server, base_claims(iss="http://127.0.0.1:1"))) is None
    assert server.verify_access_token(sign(server, base_claims(exp=int(time.time()) - 120))) is None
    no_jti = base_claims()
    del no_jti["jti"]
    assert server.verify_access_token(sign(server, no_jti)) is None
    foreign = KeySet([RSAKey.generate_key(2048, parameters={"kid": server.keyring.active().kid})])
    assert server.verify_access_token(sign(server, base_claims(), foreign)) is None
    assert server.verify_access_token("not.a.jwt") is None
    assert server.verify_access_token("") is None


def test_client_allowed_scope_rules():
    reader = client("read write")
    assert reader.get_allowed_scope(None) == "read write"
    assert reader.get_allowed_scope("write") == "write"
    assert reader.get_allowed_scope("write write read") == "write read"
    assert reader.get_allowed_scope("") == ""
    assert reader.get_allowed_scope("admin") is None


def test_client_auth_method_is_enforced_at_the_token_endpoint_only():
    basic = IdpClient(ClientRow("c", "h", None, {"token_endpoint_auth_method": "client_secret_basic"}, 1, False))
    assert basic.check_endpoint_auth_method("client_secret_basic", "token")
    assert not basic.check_endpoint_auth_method("client_secret_post", "token")
    assert basic.check_endpoint_auth_method("client_secret_post", "introspection")
    assert not basic.check_endpoint_auth_method("none", "introspection")


def test_metadata_names_every_endpoint_under_the_issuer(tmp_path):
    metadata = server_metadata(IdpConfig(data_dir=tmp_path, issuer="https://idp.example/base", scopes=("a",)))
    assert metadata["issuer"] == "https://idp.example/base"
    for key in ("token_endpoint", "jwks_uri", "registration_endpoint", "introspection_endpoint"):
        assert metadata[key].startswith("https://idp.example/base/")
    assert metadata["scopes_supported"] == ["a", "dcr"]
    assert metadata["grant_types_supported"] == ["client_credentials"]


def test_a_minted_iat_is_a_dcr_token_of_the_admin_client_for_this_server_used_once(server):
    server.store.put_admin_client("admin", "admin-secret-0123456789", {"scope": "dcr"})
    server.store.add_client("c1", "client-secret-0123456789", {"scope": "read"}, 1, "rat-0123456789012345")
    minted = base_claims(jti="m1", client_id="admin", scope="dcr", aud=ISSUER)
    server.store.record_token(minted)
    assert server.is_minted_initial_access_token(minted) is True
    assert server.is_minted_initial_access_token(minted) is False  # used up
    for other in (
        base_claims(jti="m2", client_id="admin", scope="dcr", aud="urn:api"),
        base_claims(jti="m3", client_id="c1", scope="dcr", aud=ISSUER),
        base_claims(jti="m4", client_id="gone", scope="dcr", aud=ISSUER),
        base_claims(jti="m5", client_id="admin", scope="read", aud=ISSUER),
    ):
        server.store.record_token(other)
        assert server.is_minted_initial_access_token(other) is False, other["jti"]
