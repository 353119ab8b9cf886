"""`verify` of providers and strategies against real OpenID providers (the oidc-provider peer and keystile's
built-in IdP): real round-trips, every check named, nothing changed in keystile."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["oidc_peer", "builtin_idp"])
def idp(request):
    return request.getfixturevalue(request.param)


async def _provider(api, idp, **cfg):
    body = {
        "name": "peer",
        "provider_type": "rfc7591",
        "issuer": idp.issuer,
        "dcr_config": cfg or {"initial_access_token": idp.rotating_iat, "rotates_secret_on_put": True},
    }
    r = await api.client.post("/v2/dcr-providers", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def _strategy(api, idp, provider_id, claims):
    r = await api.client.post(
        "/v2/application-auth-strategies",
        json={
            "name": "peer cc",
            "display_name": "Peer",
            "strategy_type": "openid_connect",
            "dcr_provider_id": provider_id,
            "configs": {
                "openid-connect": {
                    "issuer": idp.issuer,
                    "credential_claim": claims,
                    "scopes": ["openid", "read"],
                    "auth_methods": ["client_credentials", "bearer"],
                }
            },
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_provider_verify_with_trial_registration(api, idp):
    provider = await _provider(api, idp)
    r = await api.client.post(f"/v2/dcr-providers/{provider['id']}/verify", params={"trial_registration": "true"})
    assert r.status_code == 200
    out = r.json()
    assert out["status"] == "success", out
    assert out["errors"] == []
    names = {c["name"]: c["status"] for c in out["checks"]}
    assert names["discovery"] == "passed"
    assert names["trial_registration"] == "passed"


async def test_provider_verify_reports_a_refused_initial_access_token(api, idp):
    provider = await _provider(api, idp, initial_access_token="not-a-real-iat")
    r = await api.client.post(f"/v2/dcr-providers/{provider['id']}/verify", params={"trial_registration": "true"})
    out = r.json()
    assert out["status"] == "failed"
    assert any("invalid_token" in e or "401" in e for e in out["errors"]), out["errors"]


async def test_strategy_trial_verifies_the_token_like_the_gateway(api, idp):
    provider = await _provider(api, idp)
    strategy = await _strategy(api, idp, provider["id"], ["client_id"])
    r = await api.client.post(
        f"/v2/application-auth-strategies/{strategy['id']}/verify", params={"trial_registration": "true"}
    )
    out = r.json()
    assert out["status"] == "success", out
    checks = {c["name"]: c["status"] for c in out["checks"]}
    for name in (
        "discovery",
        "token_endpoint",
        "jwks_uri",
        "trial_registration",
        "trial_token",
        "trial_jwt",
        "trial_credential_claim",
        "trial_cleanup",
    ):
        assert checks[name] == "passed", (name, out)


async def test_strategy_trial_names_the_claim_at_fault(api, idp):
    provider = await _provider(api, idp)
    strategy = await _strategy(api, idp, provider["id"], ["appid"])
    r = await api.client.post(
        f"/v2/application-auth-strategies/{strategy['id']}/verify", params={"trial_registration": "true"}
    )
    out = r.json()
    assert out["status"] == "failed"
    assert any("no credential_claim carries the new client id" in e for e in out["errors"])
    assert any("names none of the claims" in w for w in out["warnings"])


async def test_strategy_verify_unreachable_issuer(api):
    r = await api.client.post(
        "/v2/application-auth-strategies",
        json={
            "name": "s",
            "display_name": "s",
            "strategy_type": "openid_connect",
            "configs": {
                "openid-connect": {
                    "issuer": "http://127.0.0.1:9",
                    "credential_claim": ["sub"],
                    "auth_methods": ["bearer"],
                    "custom": 1,
                }
            },
        },
    )
    out = (await api.client.post(f"/v2/application-auth-strategies/{r.json()['id']}/verify")).json()
    assert out["status"] == "failed"
    assert out["errors"][0].startswith("issuer discovery failed")
    assert out["warnings"] == ["the gateway ignores these additional keys: custom"]
