"""IdpConfig refuses what the built-in IdP cannot run with."""

from __future__ import annotations

from pathlib import Path

import pytest

from keystile.domain.errors import ConfigurationError
from keystile.idp.config import IdpConfig, issuer_for


def config(**overrides) -> IdpConfig:
    return IdpConfig(**{"data_dir": Path("/nonexistent"), "issuer": "http://127.0.0.1:9400", **overrides})


@pytest.mark.parametrize(
    "issuer",
    ["http://127.0.0.1:9400", "http://localhost:1", "http://[::1]:80", "https://idp.example.com", "https://x.test/idp"],
)
def test_accepted_issuers(issuer):
    assert config(issuer=issuer).url("/token") == f"{issuer}/token"


@pytest.mark.parametrize(
    ("issuer", "words"),
    [
        ("http://idp.example.com", "plain http"),
        ("http://10.0.0.5:9400", "plain http"),
        ("ftp://127.0.0.1", "http(s) URL"),
        ("https://idp.example.com/?a=1", "without query"),
        ("https://idp.example.com/", "must not end"),
        ("127.0.0.1:9400", "http(s) URL"),
    ],
)
def test_refused_issuers(issuer, words):
    with pytest.raises(ConfigurationError, match=None) as caught:
        config(issuer=issuer)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"scopes": ("read", "dcr")}, "reserved"),
        ({"scopes": ()}, "non-empty"),
        ({"scopes": ("two words",)}, "non-empty"),
        ({"access_token_ttl": 30}, "at least 60"),
        ({"initial_access_tokens": ("short",)}, "16 characters"),
        ({"plain_initial_access_tokens": ("short",)}, "16 characters"),
        ({"initial_access_tokens": ("x" * 20,), "plain_initial_access_tokens": ("x" * 20,)}, "both"),
        ({"admin_client_secret": "short"}, "16 characters"),
    ],
)
def test_refused_settings(overrides, words):
    with pytest.raises(ConfigurationError) as caught:
        config(**overrides)
    assert words in str(caught.value)


def test_allowed_audiences_put_the_default_first_once():
    cfg = config(api_audience="urn:a", audiences=("urn:b", "urn:a"))
    assert cfg.allowed_audiences == ("urn:a", "urn:b")


def test_admin_secret_is_not_in_repr():
    assert "admin-secret-0123456789" not in repr(config(admin_client_secret="admin-secret-0123456789"))


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:5"),
        ("0.0.0.0", "http://127.0.0.1:5"),
        ("::", "http://127.0.0.1:5"),
        ("::1", "http://[::1]:5"),
        ("localhost", "http://localhost:5"),
    ],
)
def test_issuer_for_a_bound_address(host, expected):
    assert issuer_for(host, 5) == expected
