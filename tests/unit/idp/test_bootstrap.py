"""Start-up: the admin client, static IATs and the facts file."""

from __future__ import annotations

import json
import stat

from keystile.idp.bootstrap import FACTS_FILE, bootstrap, read_facts
from keystile.idp.config import IdpConfig
from keystile.idp.store import DB_FILE, IdpStore, secret_matches

ISSUER = "http://127.0.0.1:9400"


def start(tmp_path, **overrides):
    config = IdpConfig(data_dir=tmp_path, issuer=ISSUER, **overrides)
    store = IdpStore(tmp_path / DB_FILE)
    return bootstrap(config, store), store


def test_first_start_generates_and_writes_facts(tmp_path):
    facts, store = start(tmp_path)
    written = json.loads((tmp_path / FACTS_FILE).read_text())
    assert stat.S_IMODE((tmp_path / FACTS_FILE).stat().st_mode) == 0o600
    assert written == facts.as_json()
    assert written["issuer"] == ISSUER
    assert written["rotating_iat"] == written["initial_access_token"] == facts.initial_access_token
    assert written["plain_iat"] != written["initial_access_token"]
    assert written["token_endpoint"] == f"{ISSUER}/token"
    assert written["api_audience"] == "urn:keystile:api"
    assert len(facts.initial_access_token) >= 32
    assert store.static_initial_access_token(facts.initial_access_token) is True
    assert store.static_initial_access_token(facts.plain_iat) is False
    admin = store.get_client(facts.admin_client_id)
    assert admin is not None
    assert admin.is_admin
    assert admin.metadata["scope"] == "dcr"
    assert secret_matches(facts.admin_client_secret, admin.secret_hash)


def test_facts_repr_hides_secrets(tmp_path):
    facts, _ = start(tmp_path)
    assert facts.initial_access_token not in repr(facts)
    assert facts.admin_client_secret not in repr(facts)
    assert facts.plain_iat not in repr(facts)


def test_a_restart_keeps_generated_values(tmp_path):
    first, _ = start(tmp_path)
    second, store = start(tmp_path)
    assert second == first
    assert store.static_initial_access_token(first.initial_access_token) is True


def test_configured_values_win_and_replace_old_ones(tmp_path):
    first, _ = start(tmp_path)
    second, store = start(
        tmp_path,
        initial_access_tokens=("configured-iat-0123456789",),
        plain_initial_access_tokens=("configured-plain-0123456789",),
        admin_client_secret="configured-admin-0123456789",
    )
    assert second.initial_access_token == "configured-iat-0123456789"
    assert second.plain_iat == "configured-plain-0123456789"
    assert second.admin_client_secret == "configured-admin-0123456789"
    assert store.static_initial_access_token(first.initial_access_token) is None
    assert secret_matches("configured-admin-0123456789", store.get_client(second.admin_client_id).secret_hash)


def test_a_new_admin_client_id_gets_a_new_secret(tmp_path):
    first, _ = start(tmp_path)
    second, _ = start(tmp_path, admin_client_id="another-admin")
    assert second.admin_client_secret != first.admin_client_secret


def test_unreadable_facts_are_ignored(tmp_path):
    (tmp_path / FACTS_FILE).write_text("[1, 2")
    assert read_facts(tmp_path) == {}
    (tmp_path / FACTS_FILE).write_text("[1, 2]")
    assert read_facts(tmp_path) == {}
    facts, _ = start(tmp_path)
    assert read_facts(tmp_path)["issuer"] == facts.issuer
