"""Client names carry the application tag (§2 "Name and tag", §3.3)."""

from __future__ import annotations

import uuid

from keystile.dcr.naming import MAX_CLIENT_NAME, TAG_RE, client_name, registration_scopes, tag, tag_of

APP_ID = uuid.UUID("0192a3b4-c5d6-7e8f-9a0b-3f2a9c0d11e4")


def test_name_and_suffix():
    assert client_name("Orders", APP_ID) == "Orders (ks-3f2a9c0d11e4)"
    assert tag(str(APP_ID)) == "ks-3f2a9c0d11e4"


def test_angle_brackets_dropped_and_whitespace_collapsed():
    assert client_name("  <b>Shop</b>   app ", APP_ID) == "bShop/b app (ks-3f2a9c0d11e4)"


def test_long_names_are_cut_to_100_characters_and_keep_the_tag():
    name = client_name("x" * 300, APP_ID)
    assert len(name) == MAX_CLIENT_NAME
    assert name.endswith(" (ks-3f2a9c0d11e4)")
    assert tag_of(name) == "3f2a9c0d11e4"
    cut_at_space = client_name("a" * 81 + " " + "b" * 10, APP_ID)
    assert cut_at_space == "a" * 81 + " (ks-3f2a9c0d11e4)"


def test_empty_name_still_tagged():
    assert client_name("<>", APP_ID) == "(ks-3f2a9c0d11e4)"
    assert tag_of("(ks-3f2a9c0d11e4)") == "3f2a9c0d11e4"


def test_reconcile_regex():
    assert TAG_RE.pattern == r"\(ks-([0-9a-f]{12})\)$"
    assert tag_of("Orders (ks-3f2a9c0d11e4)") == "3f2a9c0d11e4"
    assert tag_of("Orders (ks-3f2a9c0d11e4) copy") is None
    assert tag_of("Orders (ks-3F2A9C0D11E4)") is None
    assert tag_of("") is None
    assert tag_of(None) is None


def test_registration_scopes_drop_openid_scopes_and_duplicates():
    scopes = ("openid", "read", "profile", "email", "address", "phone", "offline_access", "write", "read")
    assert registration_scopes(scopes) == ["read", "write"]
    assert registration_scopes([]) == []
