"""The IdP store keeps hashes, never secrets, and enforces single use and revocation."""

from __future__ import annotations

import stat
import time

from keystile.idp.store import DB_FILE, IdpStore, secret_hash, secret_matches

SECRET = "client-secret-value-0123456789"
RAT = "registration-access-token-0123456789"
IAT = "static-initial-access-token-0123456789"


def store_in(tmp_path) -> IdpStore:
    return IdpStore(tmp_path / DB_FILE)


def test_secret_hash_and_constant_time_match():
    assert secret_hash("a") != "a"
    assert len(secret_hash("a")) == 64
    assert secret_matches("a", secret_hash("a"))
    assert not secret_matches("b", secret_hash("a"))
    assert not secret_matches("a", None)


def test_no_secret_reaches_the_database_file(tmp_path):
    store = store_in(tmp_path)
    store.add_client("c1", SECRET, {"client_name": "x"}, 1, RAT)
    store.set_static_initial_access_tokens(rotating=[IAT], plain=["plain-initial-access-token-0123"])
    store.put_admin_client("admin", "admin-secret-0123456789", {"scope": "dcr"})
    store.update_client("c1", {"client_name": "y"}, "rotated-secret-0123456789", "rotated-rat-0123456789")
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(DB_FILE))
    for secret in (SECRET, RAT, IAT, "admin-secret-0123456789", "rotated-secret-0123456789", "rotated-rat-0123456789"):
        assert secret.encode() not in raw
    assert secret_hash("rotated-secret-0123456789").encode() in raw
    assert stat.S_IMODE((tmp_path / DB_FILE).stat().st_mode) == 0o600


def test_client_round_trip_and_update(tmp_path):
    store = store_in(tmp_path)
    row = store.add_client("c1", SECRET, {"scope": "read"}, 42, RAT, rotates_secret=False)
    assert store.get_client("c1") == row
    assert row.rotates_secret is False
    assert secret_matches(RAT, row.rat_hash)
    updated = store.update_client("c1", {"scope": "write"}, None, "new-rat-0123456789")
    assert updated is not None
    assert updated.metadata == {"scope": "write"}
    assert updated.secret_hash == row.secret_hash  # None keeps the secret
    assert secret_matches("new-rat-0123456789", updated.rat_hash)
    assert store.update_client("missing", {}, None, "x") is None


def test_admin_client_is_upserted_and_not_managed_by_rfc7592(tmp_path):
    store = store_in(tmp_path)
    store.put_admin_client("admin", "first-secret-0123456789", {"scope": "dcr"})
    store.put_admin_client("admin", "second-secret-0123456789", {"scope": "dcr"})
    admin = store.get_client("admin")
    assert admin is not None
    assert admin.is_admin
    assert admin.rat_hash is None
    assert secret_matches("second-secret-0123456789", admin.secret_hash)
    assert store.update_client("admin", {}, "x" * 20, "y" * 20) is None
    assert store.delete_client("admin") is False
    assert store.get_client("admin") is not None


def test_static_iats_are_replaced_as_a_set_and_carry_their_kind(tmp_path):
    store = store_in(tmp_path)
    store.set_static_initial_access_tokens(rotating=["r1" * 10], plain=["p1" * 10])
    assert store.static_initial_access_token("r1" * 10) is True
    assert store.static_initial_access_token("p1" * 10) is False
    assert store.static_initial_access_token("nope") is None
    store.set_static_initial_access_tokens(rotating=["r2" * 10])
    assert store.static_initial_access_token("r1" * 10) is None
    assert store.static_initial_access_token("p1" * 10) is None
    assert store.static_initial_access_token("r2" * 10) is True


def claims(jti: str, client_id: str = "c1", exp: int | None = None) -> dict:
    now = int(time.time())
    return {"jti": jti, "client_id": client_id, "exp": exp or now + 600, "iat": now, "scope": "dcr"}


def test_a_token_is_consumed_once(tmp_path):
    store = store_in(tmp_path)
    store.record_token(claims("t1"))
    now = int(time.time())
    assert store.consume_token("t1", now) is True
    assert store.consume_token("t1", now) is False
    assert store.get_token("t1").consumed_at == now
    assert store.consume_token("unknown", now) is False


def test_an_expired_token_cannot_be_consumed(tmp_path):
    store = store_in(tmp_path)
    store.record_token(claims("t1", exp=int(time.time()) - 1))
    assert store.consume_token("t1", int(time.time())) is False


def test_deleting_a_client_revokes_its_tokens(tmp_path):
    store = store_in(tmp_path)
    store.add_client("c1", SECRET, {}, 1, RAT)
    store.record_token(claims("t1", "c1"))
    store.record_token(claims("t2", "c2"))
    assert store.delete_client("c1") is True
    assert store.delete_client("c1") is False
    assert store.get_client("c1") is None
    assert store.get_token("t1").revoked is True
    assert store.get_token("t2").revoked is False
    assert store.consume_token("t1", int(time.time())) is False


def test_token_records_expired_a_day_ago_are_pruned(tmp_path):
    store = store_in(tmp_path)
    store.record_token(claims("old", exp=int(time.time()) - 86_401))
    store.record_token(claims("fresh"))
    assert store.get_token("old") is None
    assert store.get_token("fresh") is not None
