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


async def test_a_trial_client_that_cannot_be_deleted_is_queued_and_reported(api):
    import json as _json

    import httpx

    issuer = "https://as.example.test"

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": issuer,
                    "token_endpoint": f"{issuer}/token",
                    "registration_endpoint": f"{issuer}/register",
                    "jwks_uri": f"{issuer}/jwks",
                },
            )
        if path == "/register" and request.method == "POST":
            meta = _json.loads(request.content)
            return httpx.Response(
                201,
                json={
                    **meta,
                    "client_id": "trial-1",
                    "client_secret": "s3cret-trial",
                    "registration_access_token": "rat-1",
                    "registration_client_uri": f"{issuer}/register/trial-1",
                },
            )
        if path == "/token":
            return httpx.Response(200, json={"access_token": "opaque", "token_type": "Bearer", "expires_in": 60})
        if path == "/register/trial-1" and request.method == "DELETE":
            return httpx.Response(503, json={"error": "temporarily_unavailable"})
        return httpx.Response(404)

    api.runtime.http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    provider = (
        await api.client.post(
            "/v2/dcr-providers", json={"name": "flaky", "provider_type": "rfc7591", "issuer": issuer, "dcr_config": {}}
        )
    ).json()
    out = (
        await api.client.post(f"/v2/dcr-providers/{provider['id']}/verify", params={"trial_registration": "true"})
    ).json()
    assert out["status"] == "failed"
    assert out["pending_cleanup"] == {"client_id": "trial-1"}
    assert any("could not be deleted" in e for e in out["errors"])
    ops = (await api.client.get("/v2/idp-operations")).json()["data"]
    assert [(o["operation"], o["client_id"], o["dcr_provider_id"]) for o in ops] == [
        ("deregister", "trial-1", provider["id"])
    ]
    assert "rat-1" not in _json.dumps(ops)
