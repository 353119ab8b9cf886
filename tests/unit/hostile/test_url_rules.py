"""Outbound URL rules (domain/urls.check_https_url, used for provider and strategy issuers, bridge base URLs and
Azure endpoints): https anywhere, plain http only to loopback, decided on the URL text alone (no DNS lookup)."""

from __future__ import annotations

import pytest

from keystile.domain.urls import check_https_url


@pytest.mark.parametrize(
    "url",
    [
        "https://idp.example.com/oauth2/default",
        "http://127.0.0.1:8443/issuer",
        "http://127.8.9.10/issuer",
        "http://[::1]:9000/",
        "http://localhost:9000/",
        "http://LOCALHOST/",
        "http://idp.localhost/",  # RFC 6761 name, trusted by name (see docs/security.md, Known gaps)
        "https://10.0.0.5/",  # https to a private address is allowed: SSRF is bounded by who may configure it
    ],
)
def test_allowed(url: str) -> None:
    assert check_https_url(url) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://idp.example.com/", "must use https"),
        ("http://10.0.0.5:9400/", "must use https"),
        ("http://169.254.169.254/latest/meta-data/", "must use https"),
        ("http://0.0.0.0/", "must use https"),
        ("http://127.1/", "must use https"),  # not an IP literal Python accepts: treated as a name
        ("http://127.0.0.1.nip.io/", "must use https"),
        ("http://localhost.evil.com/", "must use https"),
        ("http://[::ffff:10.0.0.1]/", "must use https"),
        ("http://user@localhost@10.0.0.1/", "must use https"),
        ("file:///etc/passwd", "absolute https URL"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "absolute https URL"),
        ("//idp.example.com/", "absolute https URL"),
        ("https:///path", "absolute https URL"),
        ("https://idp.example.com/#frag", "fragment"),
        ("https://idp.example.com/" + "a" * 300, "at most"),
    ],
)
def test_refused(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_https_url(url)
