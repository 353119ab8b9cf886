"""JWT verification (contracts/gateway.md §5.4)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

from keystile.oidc.tokens import JsonWebKey, TokenInvalidError, parse_unverified, verify_jwt

ISS = "https://idp.example/oauth2/default"


@pytest.fixture(scope="module")
def rsa() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "r1", "use": "sig"})


def _jwk(key) -> JsonWebKey:
    parsed = JsonWebKey.from_jwk(key.as_dict(private=False))
    assert parsed is not None
    return parsed


def _claims(**extra):
    now = int(time.time())
    out = {"iss": ISS, "exp": now + 300, "iat": now, "client_id": "c1"}
    out.update(extra)
    return {k: v for k, v in out.items() if v is not None}


def _verify(token: str, keys, **kw):
    parsed = parse_unverified(token)
    assert parsed is not None
    return verify_jwt(parsed, keys, issuer=ISS, now=time.time(), **kw)


def _b64(data) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"])
def test_rsa_algorithms(rsa: RSAKey, alg: str) -> None:
    token = jwt.encode({"alg": alg, "kid": "r1"}, _claims(), rsa, algorithms=[alg])
    assert _verify(token, [_jwk(rsa)])["client_id"] == "c1"


@pytest.mark.parametrize(("alg", "crv"), [("ES256", "P-256"), ("ES384", "P-384")])
def test_ec_algorithms(alg: str, crv: str) -> None:
    key = ECKey.generate_key(crv, parameters={"kid": "e1"})
    token = jwt.encode({"alg": alg, "kid": "e1"}, _claims(), key, algorithms=[alg])
    assert _verify(token, [_jwk(key)])["iss"] == ISS
    other_curve = ECKey.generate_key("P-384" if crv == "P-256" else "P-256", parameters={"kid": "e1"})
    with pytest.raises(TokenInvalidError):
        _verify(token, [_jwk(other_curve)])


def test_eddsa() -> None:
    key = OKPKey.generate_key("Ed25519", parameters={"kid": "o1"})
    with pytest.warns(SecurityWarning):
        token = jwt.encode({"alg": "EdDSA", "kid": "o1"}, _claims(), key, algorithms=["EdDSA"])
    assert _verify(token, [_jwk(key)])["iss"] == ISS


def test_alg_none_and_hs256_refused(rsa: RSAKey) -> None:
    none = f"{_b64({'alg': 'none', 'kid': 'r1'})}.{_b64(_claims())}."
    with pytest.raises(TokenInvalidError, match="algorithm"):
        _verify(none, [_jwk(rsa)])
    signing_input = f"{_b64({'alg': 'HS256', 'kid': 'r1'})}.{_b64(_claims())}"
    mac = hmac.new(rsa.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    hs = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    with pytest.raises(TokenInvalidError, match="algorithm"):
        _verify(hs, [_jwk(rsa)])


def test_unknown_kid_and_wrong_key(rsa: RSAKey) -> None:
    token = jwt.encode({"alg": "RS256", "kid": "other"}, _claims(), rsa)
    with pytest.raises(TokenInvalidError, match="no key"):
        _verify(token, [_jwk(rsa)])
    impostor = RSAKey.generate_key(2048, parameters={"kid": "r1"})
    forged = jwt.encode({"alg": "RS256", "kid": "r1"}, _claims(), impostor)
    with pytest.raises(TokenInvalidError, match="signature"):
        _verify(forged, [_jwk(rsa)])


def test_no_kid_uses_keys_of_the_right_type(rsa: RSAKey) -> None:
    token = jwt.encode({"alg": "RS256"}, _claims(), rsa)
    ec = ECKey.generate_key("P-256")
    assert _verify(token, [_jwk(ec), _jwk(rsa)])["iss"] == ISS


def test_key_use_and_alg_must_fit(rsa: RSAKey) -> None:
    token = jwt.encode({"alg": "RS256", "kid": "r1"}, _claims(), rsa)
    enc = JsonWebKey.from_jwk({**rsa.as_dict(private=False), "use": "enc"})
    other_alg = JsonWebKey.from_jwk({**rsa.as_dict(private=False), "alg": "PS256"})
    for key in (enc, other_alg):
        with pytest.raises(TokenInvalidError):
            _verify(token, [key])


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        # times are computed when the test runs, not at collection (a long parallel run would age them)
        (lambda: {"exp": int(time.time()) - 61}, "expired"),
        (lambda: {"exp": None}, "bad_token"),
        (lambda: {"exp": "soon"}, "bad_token"),
        (lambda: {"iss": "https://evil.example"}, "bad_token"),
        (lambda: {"iss": ISS + "/"}, "bad_token"),
        (lambda: {"nbf": int(time.time()) + 120}, "bad_token"),
    ],
)
def test_claims_refused(rsa: RSAKey, claims, reason: str) -> None:
    token = jwt.encode({"alg": "RS256", "kid": "r1"}, _claims(**claims()), rsa)
    with pytest.raises(TokenInvalidError) as info:
        _verify(token, [_jwk(rsa)])
    assert info.value.reason == reason


def test_leeway(rsa: RSAKey) -> None:
    now = int(time.time())
    token = jwt.encode({"alg": "RS256", "kid": "r1"}, _claims(exp=now - 30, nbf=now + 30), rsa)
    assert _verify(token, [_jwk(rsa)])


def test_audience_and_scopes(rsa: RSAKey) -> None:
    key = [_jwk(rsa)]
    token = jwt.encode({"alg": "RS256", "kid": "r1"}, _claims(aud=["a", "b"], scope="read write"), rsa)
    assert _verify(token, key, audience=["b", "z"], scopes_required=["read"])
    with pytest.raises(TokenInvalidError, match="audience"):
        _verify(token, key, audience=["z"])
    with pytest.raises(TokenInvalidError, match="scope"):
        _verify(token, key, scopes_required=["admin"])
    scp = jwt.encode({"alg": "RS256", "kid": "r1"}, _claims(aud="a", scp=["admin"]), rsa)
    assert _verify(scp, key, audience=["a"], scopes_required=["admin"])


@pytest.mark.parametrize("value", ["opaque", "a.b", "a.b.c.d", "..", f"{_b64([1])}.{_b64({})}.x", "e30.bm90anNvbg.x"])
def test_not_a_jws(value: str) -> None:
    assert parse_unverified(value) is None


def test_a_nesting_bomb_is_not_a_token() -> None:
    payload = base64.urlsafe_b64encode(b"[" * 5000).rstrip(b"=").decode()
    assert parse_unverified(f"eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln") is None
