"""`/v2/dcr-providers`: create per type, write-only secrets, list/filter/sort, PATCH, delete, audit."""

from __future__ import annotations

import pytest
from sqlalchemy import text

OKTA = {
    "name": "DCR Okta",
    "provider_type": "okta",
    "issuer": "https://example.okta.com/oauth2/default",
    "dcr_config": {"dcr_token": "okta-token-123"},
}
PER_TYPE = {
    "okta": {"dcr_token": "okta-token-123"},
    "auth0": {"initial_client_id": "abc", "initial_client_secret": "auth0-secret-xyz"},
    "curity": {"initial_client_id": "abc", "initial_client_secret": "curity-secret-xyz"},
    "azureAd": {"initial_client_id": "abc", "initial_client_secret": "azure-secret-xyz"},
    "http": {"dcr_base_url": "https://bridge.example.com/dcr", "api_key": "bridge_api_key_123456"},
    "rfc7591": {"initial_access_token": "iat-secret-value", "rotates_secret_on_put": True},
}
SECRETS = [
    "okta-token-123",
    "auth0-secret-xyz",
    "curity-secret-xyz",
    "azure-secret-xyz",
    "bridge_api_key_123456",
    "iat-secret-value",
]


@pytest.mark.parametrize("ptype", list(PER_TYPE))
async def test_create_each_type_never_shows_or_stores_the_secret_in_clear(api, ptype):
    body = {
        "name": f"p-{ptype}",
        "provider_type": ptype,
        "issuer": "https://idp.example.com",
        "dcr_config": PER_TYPE[ptype],
    }
    r = await api.client.post("/v2/dcr-providers", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    for secret in SECRETS:
        assert secret not in r.text
    got = await api.client.get(f"/v2/dcr-providers/{out['id']}")
    listed = await api.client.get("/v2/dcr-providers")
    for resp in (got, listed):
        for secret in SECRETS:
            assert secret not in resp.text
    if ptype == "http":
        assert got.json()["dcr_config"] == {
            "dcr_base_url": "https://bridge.example.com/dcr",
            "disable_event_hooks": False,
            "disable_refresh_secret": False,
            "allow_multiple_credentials": False,
        }
    if ptype == "auth0":
        assert got.json()["dcr_config"] == {
            "initial_client_id": "abc",
            "initial_client_audience": None,
            "use_developer_managed_scopes": False,
        }
    async with api.runtime.sessions() as s:
        raw = (await s.execute(text("SELECT dcr_config, secrets FROM dcr_providers"))).all()
    dump = repr(raw)
    for secret in SECRETS:
        assert secret not in dump
    assert "ks1:" in dump
    audit = await api.client.get("/v2/audit-logs", params={"filter[action]": "dcr_provider.create"})
    assert audit.json()["meta"]["page"]["total"] == 1
    for secret in SECRETS:
        assert secret not in audit.text
    assert "[redacted]" in audit.text


async def test_validation_lists_every_problem_in_one_pass(api):
    r = await api.client.post(
        "/v2/dcr-providers",
        json={
            "name": "",
            "provider_type": "kongIdentity",
            "issuer": "http://idp.example.com",
            "dcr_config": {},
            "extra": 1,
            "labels": {"kong-x": "v"},
        },
    )
    assert r.status_code == 400
    items = {(i["field"], i["rule"]) for i in r.json()["invalid_parameters"]}
    assert ("name", "min_length") in items
    assert ("provider_type", "enum") in items
    assert ("issuer", "type") in items
    assert ("extra", "unknown_property") in items
    assert ("labels", "is_label") in items
    enum = next(i for i in r.json()["invalid_parameters"] if i["field"] == "provider_type")
    assert "not supported" in enum["reason"] and "rfc7591" in enum["choices"]


async def test_type_specific_config_rules(api):
    r = await api.client.post(
        "/v2/dcr-providers",
        json={
            "name": "b",
            "provider_type": "http",
            "issuer": "https://x.example.com",
            "dcr_config": {"api_key": "short", "unknown": True},
        },
    )
    items = {(i["field"], i["rule"]) for i in r.json()["invalid_parameters"]}
    assert ("dcr_config.api_key", "min_length") in items
    assert ("dcr_config.unknown", "unknown_property") in items
    r = await api.client.post(
        "/v2/dcr-providers",
        json={
            "name": "r",
            "provider_type": "rfc7591",
            "issuer": "https://x.example.com",
            "dcr_config": {"initial_access_token": "t", "initial_client_id": "c"},
        },
    )
    rules = [i["rule"] for i in r.json()["invalid_parameters"]]
    assert rules.count("dependent_fields") == 2
    r = await api.client.post(
        "/v2/dcr-providers",
        json={"name": "o", "provider_type": "okta", "issuer": "https://x.example.com", "dcr_config": {}},
    )
    assert r.json()["invalid_parameters"] == [
        {
            "field": "dcr_config.dcr_token",
            "rule": "required",
            "reason": "dcr_config.dcr_token is required",
            "source": "body",
        }
    ]


async def test_http_issuer_allowed_only_on_loopback_and_discovery_url_normalised(api):
    r = await api.client.post(
        "/v2/dcr-providers",
        json={
            "name": "c",
            "provider_type": "curity",
            "issuer": "http://127.0.0.1:8443/oauth/v2/oauth-anonymous/.well-known/openid-configuration",
            "dcr_config": {"initial_client_id": "a", "initial_client_secret": "b"},
        },
    )
    assert r.status_code == 201
    assert r.json()["issuer"].endswith("/.well-known/openid-configuration")


async def test_name_taken_is_409_and_patch_rules(api):
    first = (await api.client.post("/v2/dcr-providers", json=OKTA)).json()
    dup = await api.client.post("/v2/dcr-providers", json=OKTA)
    assert dup.status_code == 409
    assert dup.json()["detail"] == "a DCR provider named 'DCR Okta' already exists"
    r = await api.client.patch(f"/v2/dcr-providers/{first['id']}", json={"provider_type": "auth0"})
    assert r.status_code == 400
    assert r.json()["invalid_parameters"][0]["reason"] == "provider_type cannot change; create a new provider"
    r = await api.client.patch(
        f"/v2/dcr-providers/{first['id']}",
        json={"name": "Okta prod", "labels": {"env": "prod"}, "dcr_config": {"dcr_token": "rotated-token-456"}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Okta prod" and r.json()["labels"] == {"env": "prod"}
    assert "rotated-token-456" not in r.text
    r = await api.client.patch(f"/v2/dcr-providers/{first['id']}", json={"labels": {"env": None}})
    assert r.json()["labels"] == {}
    r = await api.client.patch(f"/v2/dcr-providers/{first['id']}", json={"dcr_config": {"bogus": 1}})
    assert r.status_code == 400
    events = (await api.client.get("/v2/audit-logs", params={"filter[action]": "dcr_provider.update"})).json()
    changes = [e["changes"] for e in events["data"]]
    assert any(c.get("dcr_config.dcr_token") == {"from": "[redacted]", "to": "[redacted]"} for c in changes)
    assert any(c.get("name") == {"from": "DCR Okta", "to": "Okta prod"} for c in changes)
    failures = (await api.client.get("/v2/audit-logs", params={"filter[outcome]": "failure"})).json()
    assert {e["action"] for e in failures["data"]} >= {"dcr_provider.create", "dcr_provider.update"}


async def test_secret_sent_in_patch_replaces_the_stored_one(api):
    created = (await api.client.post("/v2/dcr-providers", json=OKTA)).json()
    await api.client.patch(f"/v2/dcr-providers/{created['id']}", json={"dcr_config": {"dcr_token": "new-one-789"}})
    import uuid

    from keystile.services import providers as svc
    from keystile.services.context import SYSTEM

    async with api.runtime.unit(SYSTEM) as ctx:
        row = await svc.get_row(ctx, uuid.UUID(created["id"]))
        assert svc.decrypted_secrets(ctx, row) == {"dcr_token": "new-one-789"}


async def test_delete_refused_while_a_strategy_uses_it(api):
    p = (await api.client.post("/v2/dcr-providers", json=OKTA)).json()
    s = await api.client.post(
        "/v2/application-auth-strategies",
        json={
            "name": "S",
            "display_name": "S",
            "strategy_type": "openid_connect",
            "dcr_provider_id": p["id"],
            "configs": {
                "openid-connect": {
                    "issuer": OKTA["issuer"],
                    "credential_claim": ["cid"],
                    "auth_methods": ["client_credentials"],
                }
            },
        },
    )
    assert s.status_code == 201
    r = await api.client.delete(f"/v2/dcr-providers/{p['id']}")
    assert r.status_code == 409
    assert "is used by auth strategy 'S'" in r.json()["detail"]
    assert (await api.client.delete(f"/v2/application-auth-strategies/{s.json()['id']}")).status_code == 204
    assert (await api.client.delete(f"/v2/dcr-providers/{p['id']}")).status_code == 204
    assert (await api.client.get(f"/v2/dcr-providers/{p['id']}")).status_code == 404


async def test_list_paging_filters_and_sort(api):
    for i, ptype in enumerate(["okta", "auth0", "okta"]):
        body = {
            "name": f"n{i}",
            "provider_type": ptype,
            "issuer": f"https://idp{i}.example.com",
            "dcr_config": PER_TYPE[ptype],
        }
        assert (await api.client.post("/v2/dcr-providers", json=body)).status_code == 201
    r = await api.client.get("/v2/dcr-providers", params={"page[size]": 2, "sort": "name desc"})
    assert [p["name"] for p in r.json()["data"]] == ["n2", "n1"]
    assert r.json()["meta"]["page"] == {"number": 1, "size": 2, "total": 3}
    r = await api.client.get("/v2/dcr-providers", params={"page[size]": 2, "page[number]": 3})
    assert r.json()["data"] == []
    r = await api.client.get("/v2/dcr-providers", params={"filter[provider_type]": "okta"})
    assert r.json()["meta"]["page"]["total"] == 2
    r = await api.client.get("/v2/dcr-providers", params={"filter[issuer][contains]": "IDP1"})
    assert [p["name"] for p in r.json()["data"]] == ["n1"]
    r = await api.client.get("/v2/dcr-providers", params={"filter[name][oeq]": "n0,n2"})
    assert r.json()["meta"]["page"]["total"] == 2
    r = await api.client.get("/v2/dcr-providers", params={"filter[initial_client_id]": "abc"})
    assert [p["name"] for p in r.json()["data"]] == ["n1"]
    r = await api.client.get("/v2/dcr-providers", params={"filter[bogus]": "x", "sort": "bogus", "page[size]": 0})
    assert r.status_code == 400
    rules = {(i["field"], i["rule"], i["source"]) for i in r.json()["invalid_parameters"]}
    assert rules == {
        ("filter[bogus]", "unknown_property", "query"),
        ("sort", "enum", "query"),
        ("page[size]", "min", "query"),
    }


async def test_auth_errors(api):
    r = await api.client.get("/v2/dcr-providers", headers={"Authorization": ""})
    assert r.status_code == 401 and r.json()["detail"] == "Unauthorized"
    r = await api.client.get("/v2/dcr-providers", headers={"Authorization": "Bearer kpat_" + "x" * 43})
    assert r.status_code == 401
    r = await api.client.get("/v2/dcr-providers", headers={"Authorization": "kdp_" + "x" * 43})
    assert r.status_code == 403
    r = await api.client.get("/v2/dcr-providers", headers={"Authorization": api.token})
    assert r.status_code == 200


async def test_media_type_size_and_unknown_paths(api):
    r = await api.client.post("/v2/dcr-providers", content=b"name=x", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = await api.client.post(
        "/v2/dcr-providers",
        content=b"{" + b" " * (1024 * 1024 + 1) + b"}",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    r = await api.client.get("/v2/nope")
    assert r.status_code == 404 and r.json()["detail"] == "Not Found"
    r = await api.client.put("/v2/dcr-providers")
    assert r.status_code == 405 and "allow" in r.headers
    r = await api.client.get("/v2/dcr-providers/not-a-uuid")
    assert r.status_code == 400 and r.json()["invalid_parameters"][0]["source"] == "path"


async def test_trace_id_from_traceparent(api):
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    r = await api.client.get(
        "/v2/dcr-providers/" + "0" * 8 + "-0000-0000-0000-" + "0" * 12,
        headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
    )
    assert r.status_code == 404
    assert r.headers["x-keystile-trace-id"] == trace
    assert r.json()["instance"] == f"keystile:trace:{trace}"


async def test_idempotency_key_replays_the_first_answer(api):
    headers = {"Idempotency-Key": "create-okta-1"}
    first = await api.client.post("/v2/dcr-providers", json=OKTA, headers=headers)
    assert first.status_code == 201
    again = await api.client.post("/v2/dcr-providers", json=OKTA, headers=headers)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    listed = await api.client.get("/v2/dcr-providers")
    assert listed.json()["meta"]["page"]["total"] == 1
    other = await api.client.post("/v2/dcr-providers", json={**OKTA, "name": "other"}, headers=headers)
    assert other.status_code == 422
    refused = await api.client.post("/v2/dcr-providers", json={"name": ""}, headers={"Idempotency-Key": "bad-1"})
    replay = await api.client.post("/v2/dcr-providers", json={"name": ""}, headers={"Idempotency-Key": "bad-1"})
    assert refused.status_code == replay.status_code == 400
    assert replay.headers["idempotent-replayed"] == "true"
