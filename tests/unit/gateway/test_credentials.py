"""Credential parsing: Basic in both forms (§5.3), repeated API keys (§5.2), session cookies (§5.5)."""

from __future__ import annotations

import base64
import time

import pytest

from keystile.gateway.auth import parse_basic
from keystile.gateway.session import SessionData, decode_session, derive_session_key, encode_session


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (base64.b64encode(b"client:secret").decode(), ("client", "secret")),
        (base64.b64encode(b"client:sec:ret").decode(), ("client", "sec:ret")),
        (base64.b64encode(b"cli%3Aent:s%2Bcret").decode(), ("cli:ent", "s+cret")),  # RFC 6749 §2.3.1
        (base64.b64encode(b"client:secret1").decode().rstrip("="), ("client", "secret1")),  # padding optional
        ("0oa1b2c3d4:SECRET_value", ("0oa1b2c3d4", "SECRET_value")),  # Konnect's un-encoded form
        ("  client:secret ", ("client", "secret")),
    ],
)
def test_basic_forms(value: str, expected: tuple[str, str]) -> None:
    assert parse_basic(value) == expected


@pytest.mark.parametrize(
    "value",
    ["", "nocolon", base64.b64encode(b"nocolon").decode(), ":secret", "client:", base64.b64encode(b":x").decode()],
)
def test_basic_refused(value: str) -> None:
    assert parse_basic(value) is None


SECRET = base64.b64encode(b"x" * 32).decode()


def _session(**overrides) -> SessionData:
    now = int(time.time())
    values = {"app": "app-1", "strategy": "s-1", "cid": "c-1", "iat": now, "exp": now + 60, "at": "token"}
    values.update(overrides)
    return SessionData(**values)


def test_session_round_trip() -> None:
    key = derive_session_key(SECRET)
    value = encode_session(key, _session())
    assert value.startswith("v1.")
    assert decode_session(key, "s-1", value) == _session(iat=_session().iat, exp=_session().exp)


def test_session_tamper_wrong_strategy_wrong_key() -> None:
    key = derive_session_key(SECRET)
    value = encode_session(key, _session())
    body = value[3:]
    flipped = "v1." + body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    assert decode_session(key, "s-1", flipped) is None
    assert decode_session(key, "s-2", value) is None  # associated data binds the strategy
    assert decode_session(derive_session_key(base64.b64encode(b"y" * 32).decode()), "s-1", value) is None
    assert decode_session(key, "s-1", "v2." + body) is None
    assert decode_session(key, "s-1", "v1.@@@") is None
    assert decode_session(key, "s-1", "v1.") is None


def test_session_nonce_is_random() -> None:
    key = derive_session_key(SECRET)
    assert encode_session(key, _session()) != encode_session(key, _session())
