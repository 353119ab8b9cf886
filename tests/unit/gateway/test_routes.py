"""Path normalisation and route matching (contracts/gateway.md §4)."""

from __future__ import annotations

import pytest

from keystile.gateway.routes import MalformedPathError, Router, join_upstream_path, normalize_path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/billing/v1/invoices", "/billing/v1/invoices"),
        ("/a/./b/../c", "/a/c"),
        ("/a/b/.", "/a/b/"),
        ("/a/b/..", "/a/"),
        ("/%62illing/%7Ev1", "/billing/~v1"),
        ("/a%2Fb", "/a%2Fb"),
        ("/a%2fb/%2e%2e/c", "/c"),  # %2F is no separator: a%2Fb is one segment
        ("/x/a%2fb/c", "/x/a%2Fb/c"),
        ("/a%20b", "/a%20b"),
        ("//a", "//a"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected


@pytest.mark.parametrize("raw", ["/..", "/a/../..", "/%2e%2e/x", "relative", "/a%zz", "/a%2"])
def test_malformed(raw: str) -> None:
    with pytest.raises(MalformedPathError):
        normalize_path(raw)


def _router() -> Router[str]:
    return Router(
        [
            ("/billing/v1", None, "v1"),
            ("/billing", ["GET"], "billing-get"),
            ("/billing", None, "billing-any"),
            ("/orders", ["POST", "put"], "orders-write"),
            ("/", None, "root"),
        ]
    )


@pytest.mark.parametrize(
    ("path", "method", "target", "prefix"),
    [
        ("/billing/v1", "GET", "v1", "/billing/v1"),
        ("/billing/v1/invoices", "GET", "v1", "/billing/v1"),
        ("/billing/v1/", "GET", "v1", "/billing/v1"),
        ("/billing/v1x", "GET", "billing-get", "/billing"),  # not a `/` boundary for /billing/v1
        ("/billing/v1x", "POST", "billing-any", "/billing"),  # methods beat none only when they match
        ("/orders/1", "PUT", "orders-write", "/orders"),
        ("/orders/1", "GET", "root", "/"),  # a method outside `methods` is no match
        ("/elsewhere", "GET", "root", "/"),
    ],
)
def test_match(path: str, method: str, target: str, prefix: str) -> None:
    assert _router().match(path, method) == (target, prefix)


def test_no_match() -> None:
    router = Router([("/a", None, "a")])
    assert router.match("/b", "GET") is None
    assert router.match("/ab", "GET") is None


@pytest.mark.parametrize(
    ("base", "rest", "expected"),
    [
        ("/api", "", "/api"),
        ("/api", "/x", "/api/x"),
        ("/api/", "/x", "/api/x"),
        ("", "/x", "/x"),
        ("", "", "/"),
        ("/api", "/", "/api/"),
    ],
)
def test_join(base: str, rest: str, expected: str) -> None:
    assert join_upstream_path(base, rest) == expected
