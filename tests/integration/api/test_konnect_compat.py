"""Every request example of /v2/dcr-providers and /v2/application-auth-strategies in Konnect's published
document is accepted (kongIdentity aside: not supported) and answered in a shape that validates against
Konnect's response schemas."""

from __future__ import annotations

from tests.konnect_specs import request_examples, response_schema_ref, schema_errors, spec

DOC = "application-auth-strategies-v2.yaml"


async def test_dcr_provider_examples_round_trip_in_konnect_shapes(api):
    doc = spec(DOC)
    created = {}
    for name, body in request_examples(doc, "CreateDcrProvider").items():
        r = await api.client.post("/v2/dcr-providers", json=body)
        if body["provider_type"] == "kongIdentity":
            assert r.status_code == 400, name
            assert r.json()["invalid_parameters"][0]["field"] == "provider_type"
            continue
        assert r.status_code == 201, (name, r.text)
        assert schema_errors(doc, response_schema_ref(doc, "CreateDcrProvider"), r.json()) == [], name
        created[body["provider_type"]] = r.json()
    assert set(created) == {"okta", "auth0", "azureAd", "curity", "http"}
    for out in created.values():
        got = await api.client.get(f"/v2/dcr-providers/{out['id']}")
        assert schema_errors(doc, response_schema_ref(doc, "GetDcrProvider"), got.json()) == []
    listed = await api.client.get("/v2/dcr-providers")
    assert schema_errors(doc, response_schema_ref(doc, "ListDcrProviders"), listed.json()) == []
    (update,) = request_examples(doc, "UpdateDcrProvider").values()
    r = await api.client.patch(f"/v2/dcr-providers/{created['okta']['id']}", json=update)
    assert r.status_code == 200, r.text
    assert schema_errors(doc, response_schema_ref(doc, "GetDcrProvider"), r.json()) == []
    # verify really calls the IdP: point a bridge at a closed loopback port instead of the example's host
    local = await api.client.post(
        "/v2/dcr-providers",
        json={
            "name": "closed",
            "provider_type": "http",
            "issuer": "http://127.0.0.1:9",
            "dcr_config": {"dcr_base_url": "http://127.0.0.1:9/dcr", "api_key": "a_key_of_twelve"},
        },
    )
    verify = await api.client.post(f"/v2/dcr-providers/{local.json()['id']}/verify")
    assert verify.status_code == 200
    assert verify.json()["status"] == "failed"
    assert schema_errors(doc, response_schema_ref(doc, "VerifyDcrProvider"), verify.json()) == []


async def test_auth_strategy_examples_round_trip_in_konnect_shapes(api):
    doc = spec(DOC)
    provider = (
        await api.client.post(
            "/v2/dcr-providers",
            json={
                "name": "p",
                "provider_type": "okta",
                "issuer": "https://oidc-dcr.example.com",
                "dcr_config": {"dcr_token": "t"},
            },
        )
    ).json()
    ids = {}
    for name, body in request_examples(doc, "CreateAppAuthStrategy").items():
        if "dcr_provider_id" in body:
            body = {**body, "dcr_provider_id": provider["id"]}
        r = await api.client.post("/v2/application-auth-strategies", json=body)
        assert r.status_code == 201, (name, r.text)
        assert schema_errors(doc, response_schema_ref(doc, "CreateAppAuthStrategy"), r.json()) == [], name
        ids[body["strategy_type"] + str(len(ids))] = r.json()["id"]
    for sid in ids.values():
        got = await api.client.get(f"/v2/application-auth-strategies/{sid}")
        assert schema_errors(doc, response_schema_ref(doc, "GetAppAuthStrategy"), got.json()) == []
    listed = await api.client.get("/v2/application-auth-strategies")
    assert schema_errors(doc, response_schema_ref(doc, "ListAppAuthStrategies"), listed.json()) == []
    key_auth_id = next(v for k, v in ids.items() if k.startswith("key_auth"))
    oidc_id = next(v for k, v in ids.items() if k.startswith("openid_connect"))
    updates = request_examples(doc, "UpdateAppAuthStrategy")
    for name, body in updates.items():
        target = key_auth_id if "KeyAuth" in name else oidc_id
        r = await api.client.patch(f"/v2/application-auth-strategies/{target}", json=body)
        assert r.status_code == 200, (name, r.text)
        assert r.json()["display_name"] == body["display_name"]
        assert schema_errors(doc, response_schema_ref(doc, "UpdateAppAuthStrategy"), r.json()) == [], name
