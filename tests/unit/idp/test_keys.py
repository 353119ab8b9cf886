"""Signing keys on disk: creation with private modes, rotation, publication window, reload by a running ring."""

from __future__ import annotations

import json
import stat

import pytest
from joserfc import jwt
from joserfc.errors import UnsupportedKeyOperationError
from joserfc.jwk import KeySet

from keystile.domain.errors import ConfigurationError
from keystile.idp.keys import (
    KEYS_FILE,
    LEEWAY_SECONDS,
    KeyRing,
    ensure_keys,
    load_keys,
    rotate_keys,
    write_private_json,
)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_key_is_created_once_with_private_modes(tmp_path):
    data_dir = tmp_path / "idp"
    keys = ensure_keys(data_dir)
    assert len(keys) == 1
    assert keys[0].retired_at is None
    assert mode(data_dir) == 0o700
    assert mode(data_dir / KEYS_FILE) == 0o600
    assert ensure_keys(data_dir) == keys  # idempotent
    stored = json.loads((data_dir / KEYS_FILE).read_text())["keys"][0]
    assert stored["jwk"]["kty"] == "RSA"
    assert "d" in stored["jwk"]  # the private key lives only here


def test_public_jwk_has_no_private_members(tmp_path):
    key = ensure_keys(tmp_path)[0]
    public = key.public_jwk()
    assert public["kid"] == key.kid
    assert (public["alg"], public["use"], public["kty"]) == ("RS256", "sig", "RSA")
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(public)


def test_rotation_retires_the_active_key_and_publishes_both(tmp_path):
    first = ensure_keys(tmp_path)[0]
    new = rotate_keys(tmp_path, token_ttl=600, now=1_000_000)
    keys = {k.kid: k for k in load_keys(tmp_path)}
    assert keys[first.kid].retired_at == 1_000_000
    assert keys[new.kid].retired_at is None
    ring = KeyRing(tmp_path, token_ttl=600)
    assert ring.active().kid == new.kid
    window_end = 1_000_000 + 600 + LEEWAY_SECONDS
    assert {k.kid for k in ring.published(now=window_end - 1)} == {first.kid, new.kid}
    assert {k.kid for k in ring.published(now=window_end)} == {new.kid}


def test_rotation_prunes_keys_past_their_window(tmp_path):
    first = ensure_keys(tmp_path)[0]
    second = rotate_keys(tmp_path, token_ttl=60, now=1_000)
    third = rotate_keys(tmp_path, token_ttl=60, now=1_000 + 60 + LEEWAY_SECONDS)
    assert [k.kid for k in load_keys(tmp_path)] == [second.kid, third.kid]
    assert first.kid not in {k.kid for k in load_keys(tmp_path)}
    assert mode(tmp_path / KEYS_FILE) == 0o600


def test_a_running_ring_picks_up_a_rotation_and_signs_with_the_new_key(tmp_path):
    ring = KeyRing(tmp_path, token_ttl=600)
    old = ring.active()
    token_before = jwt.encode({"alg": "RS256"}, {"n": 1}, ring.signing_key_set())
    new = rotate_keys(tmp_path, token_ttl=600)
    token_after = jwt.encode({"alg": "RS256"}, {"n": 2}, ring.signing_key_set())
    keys = ring.verification_key_set()
    assert jwt.decode(token_before, keys).header["kid"] == old.kid
    assert jwt.decode(token_after, keys).header["kid"] == new.kid
    assert [k["kid"] for k in ring.jwks()["keys"]] == [old.kid, new.kid]


def test_verification_keys_cannot_sign(tmp_path):
    ring = KeyRing(tmp_path, token_ttl=600)
    with pytest.raises(UnsupportedKeyOperationError):
        jwt.encode({"alg": "RS256"}, {"n": 1}, KeySet.import_key_set(ring.jwks()))


def test_broken_key_files_are_configuration_errors(tmp_path):
    (tmp_path / KEYS_FILE).write_text("{not json")
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_keys(tmp_path)
    (tmp_path / KEYS_FILE).write_text('{"keys": [{"kid": "a"}]}')
    with pytest.raises(ConfigurationError, match="not a key file"):
        load_keys(tmp_path)


def test_a_ring_refuses_a_file_without_an_active_key(tmp_path):
    ring = KeyRing(tmp_path, token_ttl=600)
    key = ring.active()
    retired = {**key.as_record(), "retired_at": 5}
    write_private_json(tmp_path / KEYS_FILE, {"keys": [retired]})
    with pytest.raises(ConfigurationError, match="no active key"):
        ring.active()


def test_write_private_json_replaces_atomically_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "facts.json"
    write_private_json(target, {"a": 1})
    write_private_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["facts.json"]
