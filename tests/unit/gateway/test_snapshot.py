"""Snapshot schema (contracts/gateway.md §3) and its tables."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from keystile.domain.snapshot import SnapshotError, parse_snapshot
from keystile.gateway.tables import build_config

VALID = {
    "format_version": 1,
    "version": 42,
    "generated_at": "2026-11-28T10:00:00.000Z",
    "shared_cache_key": "a2V5",
    "future_key": {"ignored": True},
    "routes": [
        {
            "product_version_id": "pv1",
            "product_id": "p1",
            "paths": ["/billing/v1"],
            "methods": ["get"],
            "strip_path": True,
            "upstream_url": "http://billing.internal:8080/api",
            "connect_timeout_ms": 5000,
            "read_timeout_ms": 60000,
            "auth_strategy_ids": ["s1", "s2"],
            "allow_anonymous": False,
        }
    ],
    "strategies": [
        {
            "id": "s1",
            "strategy_type": "openid_connect",
            "issuer": "https://idp.example",
            "discovery_url": "https://idp.example/.well-known/openid-configuration",
            "credential_claim": ["cid", "client_id"],
            "scopes": ["billing:read"],
            "auth_methods": ["client_credentials", "bearer", "session"],
            "settings": {"session_secret": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=", "unknown": 1},
        },
        {"id": "s2", "strategy_type": "key_auth", "key_names": ["apikey"]},
    ],
    "applications": [
        {
            "id": "a1",
            "name": "billing-sync",
            "developer_id": "d1",
            "portal_id": "p1",
            "auth_strategy_id": "s1",
            "credentials_not_before": "2026-11-28T09:58:00.000Z",
            "credentials": [{"type": "client_id", "id": "0oa1", "value": "0oa1"}],
        },
        {
            "id": "a2",
            "name": "ci",
            "developer_id": "d1",
            "portal_id": "p1",
            "auth_strategy_id": "s2",
            "credentials_not_before": None,
            "credentials": [
                {"type": "api_key_sha256", "id": "k1", "value": "AB" * 32, "expires_at": "2027-03-01T00:00:00.000Z"}
            ],
        },
    ],
    "registrations": {"a1": ["pv1"]},
}


def test_json_and_yaml() -> None:
    from_json = parse_snapshot(json.dumps(VALID).encode())
    from_yaml = parse_snapshot(yaml.safe_dump(VALID).encode(), "yaml")
    assert from_json == from_yaml
    assert from_json.version == 42
    assert parse_snapshot(yaml.safe_dump(VALID).encode(), "auto").version == 42


def test_tables() -> None:
    config = build_config(parse_snapshot(json.dumps(VALID).encode()), "file")
    route, prefix = config.router.match("/billing/v1/x", "GET")
    assert (route.product_version_id, prefix, route.host_header) == ("pv1", "/billing/v1", b"billing.internal:8080")
    assert config.router.match("/billing/v1/x", "POST") is None
    assert [s.id for s in route.strategies] == ["s1", "s2"]
    assert route.www_authenticate == ['Bearer realm="keystile"', 'Basic realm="keystile"', 'Key realm="keystile"']
    assert config.client_ids[("s1", "0oa1")].registrations == frozenset({"pv1"})
    assert config.keys[("s2", "ab" * 32)].credential_id == "k1"
    assert config.apps["a2"].registrations == frozenset()
    assert config.strategies["s1"].session is True


def _broken(mutate) -> SnapshotError:
    data = copy.deepcopy(VALID)
    mutate(data)
    with pytest.raises(SnapshotError) as info:
        parse_snapshot(json.dumps(data).encode())
    return info.value


def test_every_error_is_listed() -> None:
    def mutate(d):
        del d["version"]
        d["routes"][0]["upstream_url"] = "ftp://x"
        d["strategies"][0]["auth_methods"] = ["magic"]

    errors = _broken(mutate).errors
    assert len(errors) == 3
    assert any(e.startswith("version:") for e in errors)
    assert any("upstream_url" in e for e in errors)
    assert any("auth_methods" in e for e in errors)


def test_unknown_format_version_and_garbage() -> None:
    assert "format_version" in _broken(lambda d: d.update(format_version=2)).errors[0]
    with pytest.raises(SnapshotError):
        parse_snapshot(b"{not json")
    with pytest.raises(SnapshotError):
        parse_snapshot(b"[1, 2]")
