"""SSRF through configuration: issuer and bridge URLs that keystile would call are refused unless https (plain
http only on loopback) when an admin saves them, and nothing is stored; upstream URLs may name any http(s) host."""

from __future__ import annotations

from tests.integration.hostile.dbstate import db_state

EVIL = ["http://169.254.169.254/latest", "http://10.0.0.5:9400", "file:///etc/passwd", "gopher://127.0.0.1:6379/_x"]


async def test_provider_and_strategy_urls_must_be_https_unless_loopback(api) -> None:
    before = await db_state(api.runtime)
    for url in EVIL:
        issuer = await api.client.post(
            "/v2/dcr-providers",
            json={"name": "p", "provider_type": "rfc7591", "issuer": url, "dcr_config": {"initial_access_token": "x"}},
        )
        assert issuer.status_code == 400, issuer.text
        assert "issuer" in {p["field"] for p in issuer.json()["invalid_parameters"]}
        bridge = await api.client.post(
            "/v2/dcr-providers",
            json={
                "name": "b",
                "provider_type": "http",
                "issuer": "https://idp.example.com",
                "dcr_config": {"dcr_base_url": url, "api_key": "bridge_api_key_123456"},
            },
        )
        assert bridge.status_code == 400, bridge.text
        assert any(p["field"].endswith("dcr_base_url") for p in bridge.json()["invalid_parameters"]), bridge.text
        strategy = await api.client.post(
            "/v2/application-auth-strategies",
            json={
                "name": "s",
                "display_name": "S",
                "strategy_type": "openid_connect",
                "configs": {"openid-connect": {"issuer": url, "credential_claim": ["client_id"], "scopes": ["x"]}},
            },
        )
        assert strategy.status_code == 400, strategy.text
        assert any("issuer" in p["field"] for p in strategy.json()["invalid_parameters"]), strategy.text
    assert await db_state(api.runtime) == before
    loopback = await api.client.post(
        "/v2/dcr-providers",
        json={
            "name": "b",
            "provider_type": "http",
            "issuer": "http://127.0.0.1:9/issuer",
            "dcr_config": {"dcr_base_url": "http://[::1]:9/dcr", "api_key": "bridge_api_key_123456"},
        },
    )
    assert loopback.status_code == 201, loopback.text
