"""Gateway metrics: names and labels of §7, the no-app-label switch, and the merge of worker counters."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, generate_latest

from keystile.gateway.metrics import GatewayMetrics


def _text(metrics: GatewayMetrics) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return generate_latest(registry).decode()


def test_names_and_labels() -> None:
    m = GatewayMetrics()
    m.request("pv1", 200, "key_auth", "app-1", 0.003)
    m.request("pv1", 200, "key_auth", "app-1", 0.2)
    m.upstream("pv1", 0.002)
    m.auth_failure("pv1", "bad_secret")
    m.idp_request("https://idp", "token", "ok")
    m.cache_event("exchange", "hit")
    m.jwks_kid_miss("https://idp")
    m.config_loaded(7)
    text = _text(m)
    assert (
        'keystile_gateway_requests_total{application_id="app-1",auth_method="key_auth",route="pv1",status="200"} 2.0'
        in text
    )
    assert 'keystile_gateway_request_duration_seconds_bucket{le="0.005",route="pv1"} 1.0' in text
    assert 'keystile_gateway_request_duration_seconds_count{route="pv1"} 2.0' in text
    assert 'keystile_gateway_upstream_duration_seconds_count{route="pv1"} 1.0' in text
    assert 'keystile_gateway_auth_failures_total{reason="bad_secret",route="pv1"} 1.0' in text
    assert 'keystile_gateway_idp_requests_total{issuer="https://idp",kind="token",outcome="ok"} 1.0' in text
    assert 'keystile_gateway_cache_events_total{cache="exchange",event="hit"} 1.0' in text
    assert 'keystile_gateway_jwks_kid_miss_total{issuer="https://idp"} 1.0' in text
    assert "keystile_gateway_config_version 7.0" in text
    assert "keystile_gateway_config_age_seconds" in text


def test_no_app_label() -> None:
    m = GatewayMetrics(app_label=False)
    m.request("pv1", 200, "bearer", "app-1", 0.001)
    m.request("pv1", 200, "bearer", "app-2", 0.001)
    text = _text(m)
    assert 'keystile_gateway_requests_total{auth_method="bearer",route="pv1",status="200"} 2.0' in text
    assert "app-1" not in text


def test_merge_of_worker_dumps() -> None:
    own, w1, w2 = GatewayMetrics(), GatewayMetrics(), GatewayMetrics()
    own.config_loaded(3)
    w1.request("pv1", 200, "key_auth", "a", 0.001)
    w2.request("pv1", 200, "key_auth", "a", 0.001)
    w2.auth_failure("pv1", "no_credential")
    dumps = [json.loads(json.dumps(w.dump())) for w in (w1, w2)]
    text = _text(GatewayMetrics.merged(own, dumps))
    assert (
        'keystile_gateway_requests_total{application_id="a",auth_method="key_auth",route="pv1",status="200"} 2.0'
        in text
    )
    assert 'keystile_gateway_request_duration_seconds_count{route="pv1"} 2.0' in text
    assert 'keystile_gateway_auth_failures_total{reason="no_credential",route="pv1"} 1.0' in text
    assert "keystile_gateway_config_version 3.0" in text
