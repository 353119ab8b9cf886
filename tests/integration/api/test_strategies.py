"""`/v2/application-auth-strategies`: types, configs rules, PUT/PATCH, write-only keys, delete, filters."""

from __future__ import annotations

import uuid

from sqlalchemy import text

OIDC = {
    "issuer": "https://idp.example.com/oauth2/default",
    "credential_claim": ["client_id"],
    "auth_methods": ["client_credentials", "bearer"],
}


def oidc_body(**overrides):
    body = {
        "name": "S",
        "display_name": "Secure",
        "strategy_type": "openid_connect",
        "configs": {"openid-connect": dict(OIDC)},
    }
    body.update(overrides)
    return body


async def make_provider(api, ptype="okta", name="P"):
    cfg = {"okta": {"dcr_token": "t"}, "auth0": {"initial_client_id": "i", "initial_client_secret": "s"}}[ptype]
    r = await api.client.post(
        "/v2/dcr-providers",
        json={"name": name, "provider_type": ptype, "issuer": "https://idp.example.com", "dcr_config": cfg},
    )
    return r.json()


async def test_defaults_and_normalised_type(api):
    r = await api.client.post("/v2/application-auth-strategies", json=oidc_body(strategy_type="openid-connect"))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["strategy_type"] == "openid_connect"
    assert out["configs"]["openid-connect"]["scopes"] == ["openid"]
    assert out["dcr_provider"] is None and out["supports_multiple_credentials"] is False
    assert out["principals"] == {"enabled": False}
    assert r.headers["location"] == f"/v2/application-auth-strategies/{out['id']}"
    r = await api.client.post(
        "/v2/application-auth-strategies",
        json={"name": "K", "display_name": "Key", "strategy_type": "key-auth", "configs": {"key-auth": {}}},
    )
    assert r.status_code == 201
    assert r.json()["configs"] == {"key-auth": {"key_names": ["apikey"]}}
    assert r.json()["supports_multiple_credentials"] is True


async def test_config_rules_all_in_one_answer(api):
    body = oidc_body(
        configs={
            "openid-connect": {
                "issuer": "ftp://x",
                "credential_claim": [],
                "auth_methods": ["session"],
                "token_post_args_names": ["audience"],
            }
        }
    )
    r = await api.client.post("/v2/application-auth-strategies", json=body)
    assert r.status_code == 400
    fields = {(i["field"], i["rule"]) for i in r.json()["invalid_parameters"]}
    assert ("configs.openid-connect.issuer", "type") in fields
    assert ("configs.openid-connect.credential_claim", "min_items") in fields
    assert ("configs.openid-connect.auth_methods", "dependent_fields") in fields
    r = await api.client.post(
        "/v2/application-auth-strategies",
        json=oidc_body(configs={"openid-connect": {**OIDC, "auth_methods": ["authorization_code"]}}),
    )
    item = r.json()["invalid_parameters"][0]
    assert item["rule"] == "enum" and "cannot enforce" in item["reason"]
    r = await api.client.post("/v2/application-auth-strategies", json=oidc_body(configs={"key-auth": {}}))
    assert r.json()["invalid_parameters"][0]["rule"] == "invalid"
    r = await api.client.post(
        "/v2/application-auth-strategies",
        json=oidc_body(
            configs={"openid-connect": {**OIDC, "token_post_args_names": ["audience"], "token_post_args_values": []}}
        ),
    )
    assert r.json()["invalid_parameters"][0]["rule"] == "dependent_fields"


async def test_write_only_additional_keys_and_stored_extras(api):
    secret = "a-session-secret-of-32-characters!"
    r = await api.client.post(
        "/v2/application-auth-strategies",
        json=oidc_body(
            configs={
                "openid-connect": {
                    **OIDC,
                    "session_secret": secret,
                    "introspection_client_secret": "intro-secret-value",
                    "custom_flag": True,
                    "auth_methods": ["bearer", "session"],
                }
            }
        ),
    )
    assert r.status_code == 201, r.text
    cfg = r.json()["configs"]["openid-connect"]
    assert "session_secret" not in cfg and "introspection_client_secret" not in cfg
    assert cfg["custom_flag"] is True
    assert secret not in r.text
    async with api.runtime.sessions() as s:
        dump = repr((await s.execute(text("SELECT configs, secrets FROM auth_strategies"))).all())
    assert secret not in dump and "intro-secret-value" not in dump
    sid = r.json()["id"]
    r = await api.client.patch(
        f"/v2/application-auth-strategies/{sid}", json={"configs": {"openid-connect": {"scopes": ["billing:read"]}}}
    )
    assert r.status_code == 200, r.text
    cfg = r.json()["configs"]["openid-connect"]
    assert cfg["scopes"] == ["billing:read"] and cfg["custom_flag"] is True
    from keystile.services import strategies
    from keystile.services.context import SYSTEM

    async with api.runtime.unit(SYSTEM) as ctx:
        row = await strategies.get_row(ctx, uuid.UUID(sid))
        assert set(row.secrets) == {"session_secret", "introspection_client_secret"}
        assert (
            ctx.vault.decrypt(
                row.secrets["session_secret"], table="auth_strategies", row_id=row.id, field="session_secret"
            )
            == secret
        )


async def test_put_replaces_with_201_and_refuses_type_change(api):
    sid = (await api.client.post("/v2/application-auth-strategies", json=oidc_body())).json()["id"]
    r = await api.client.put(f"/v2/application-auth-strategies/{sid}", json=oidc_body(name="Renamed"))
    assert r.status_code == 201 and r.json()["name"] == "Renamed"
    r = await api.client.put(
        f"/v2/application-auth-strategies/{sid}",
        json={"name": "K", "display_name": "Key", "strategy_type": "key_auth", "configs": {"key-auth": {}}},
    )
    assert r.status_code == 400 and r.json()["invalid_parameters"][0]["rule"] == "invalid"
    r = await api.client.patch(f"/v2/application-auth-strategies/{sid}", json={"strategy_type": "key_auth"})
    assert r.status_code == 400 and r.json()["invalid_parameters"][0]["rule"] == "unknown_property"


async def test_provider_summary_filters_and_sort(api):
    okta = await make_provider(api, "okta", "Okta")
    auth0 = await make_provider(api, "auth0", "Auth0")
    for name, pid in (("a", okta["id"]), ("b", auth0["id"]), ("c", None)):
        body = oidc_body(name=name)
        if pid:
            body["dcr_provider_id"] = pid
        assert (await api.client.post("/v2/application-auth-strategies", json=body)).status_code == 201
    r = await api.client.get("/v2/application-auth-strategies", params={"filter[dcr_provider_type]": "auth0"})
    assert [s["name"] for s in r.json()["data"]] == ["b"]
    assert r.json()["data"][0]["supports_multiple_credentials"] is False
    r = await api.client.get("/v2/application-auth-strategies", params={"sort": "dcr_provider_name"})
    assert r.status_code == 200
    r = await api.client.get("/v2/application-auth-strategies", params={"filter[dcr_provider_id]": okta["id"]})
    assert r.json()["data"][0]["dcr_provider"]["provider_type"] == "okta"
    assert r.json()["data"][0]["supports_multiple_credentials"] is True


async def test_key_auth_rules(api):
    r = await api.client.post(
        "/v2/application-auth-strategies",
        json={
            "name": "K",
            "display_name": "Key",
            "strategy_type": "key_auth",
            "configs": {"key-auth": {"key_names": ["bad name"], "ttl": {"value": 0, "unit": "months"}}},
        },
    )
    fields = {(i["field"], i["rule"]) for i in r.json()["invalid_parameters"]}
    assert ("configs.key-auth.key_names", "matches_regex") in fields
    assert ("configs.key-auth.ttl.value", "min") in fields
    assert ("configs.key-auth.ttl.unit", "enum") in fields
    r = await api.client.post(
        "/v2/application-auth-strategies",
        json={
            "name": "K",
            "display_name": "Key",
            "strategy_type": "key_auth",
            "configs": {"key-auth": {"ttl": {"value": 90, "unit": "days"}}},
        },
    )
    sid = r.json()["id"]
    r = await api.client.patch(f"/v2/application-auth-strategies/{sid}", json={"configs": {"key-auth": {"ttl": None}}})
    assert r.status_code == 200 and "ttl" not in r.json()["configs"]["key-auth"]


async def test_changes_that_reach_the_gateway_move_the_config_version(api):
    from keystile.services import installation
    from keystile.services.context import SYSTEM

    async def version() -> int:
        async with api.runtime.unit(SYSTEM) as ctx:
            return await installation.config_version(ctx)

    sid = (await api.client.post("/v2/application-auth-strategies", json=oidc_body())).json()["id"]
    v0 = await version()
    await api.client.patch(
        f"/v2/application-auth-strategies/{sid}", json={"configs": {"openid-connect": {"scopes": ["x"]}}}
    )
    v1 = await version()
    await api.client.put(f"/v2/application-auth-strategies/{sid}", json=oidc_body(name="n"))
    v2 = await version()
    await api.client.delete(f"/v2/application-auth-strategies/{sid}")
    v3 = await version()
    assert v0 < v1 < v2 < v3
