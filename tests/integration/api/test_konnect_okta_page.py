"""The two API calls of Konnect's page "Configuring Okta for Dynamic Client Registration", sent as the page
writes them (bare `Authorization: <token>`, `content-type: application/json`)."""

from __future__ import annotations

import json

PROVIDER_BODY_AS_ON_PAGE = (
    '{"name": "DCR Okta", "provider_type": "okta", "issuer": "https://example.okta.com/oauth2/default", '
    '"dcr_config": {"dcr_token": "my_dcr_token"}'
)
PAGE_PROVIDER_ID = "93f8380e-7798-4566-99e3-2edf2b57d289"


def page_headers(token: str) -> dict[str, str]:
    return {"Authorization": token, "content-type": "application/json"}


def strategy_body(strategy_type: str, provider_id: str) -> str:
    return json.dumps(
        {
            "name": "Okta auth strategy",
            "display_name": "Okta",
            "strategy_type": strategy_type,
            "configs": {
                "openid-connect": {
                    "issuer": "https://example.okta.com/oauth2/default",
                    "credential_claim": ["client_id"],
                    "scopes": ["openid", "email"],
                    "auth_methods": ["client_credentials", "bearer"],
                }
            },
            "dcr_provider_id": provider_id,
        }
    )


async def test_provider_body_missing_its_closing_brace_is_explained(api):
    r = await api.client.post("/v2/dcr-providers", content=PROVIDER_BODY_AS_ON_PAGE, headers=page_headers(api.token))
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == 400 and body["title"] == "Bad Request"
    assert body["instance"] == f"keystile:trace:{r.headers['x-keystile-trace-id']}"
    (item,) = body["invalid_parameters"]
    assert item["field"] == "body" and item["rule"] == "invalid" and item["source"] == "body"
    n = len(PROVIDER_BODY_AS_ON_PAGE)
    assert item["reason"] == (
        f"malformed JSON at line 1, column {n + 1} (char {n}): expected ',' or '}}' but the body ended; "
        "a closing brace is probably missing"
    )
    listed = await api.client.get("/v2/dcr-providers")
    assert listed.json()["meta"]["page"]["total"] == 0


async def test_the_page_flow_with_the_brace_and_openid_connect(api):
    r = await api.client.post(
        "/v2/dcr-providers", content=PROVIDER_BODY_AS_ON_PAGE + "}", headers=page_headers(api.token)
    )
    assert r.status_code == 201, r.text
    provider = r.json()
    assert r.headers["location"] == f"/v2/dcr-providers/{provider['id']}"
    assert provider["name"] == "DCR Okta" and provider["display_name"] == "DCR Okta"
    assert provider["provider_type"] == "okta"
    assert provider["issuer"] == "https://example.okta.com/oauth2/default"
    assert provider["dcr_config"] == {} and provider["labels"] == {} and provider["active"] is False
    assert "my_dcr_token" not in r.text

    bad = await api.client.post(
        "/v2/application-auth-strategies",
        content=strategy_body("okta", provider["id"]),
        headers=page_headers(api.token),
    )
    assert bad.status_code == 400
    assert bad.json()["invalid_parameters"] == [
        {
            "field": "strategy_type",
            "rule": "enum",
            "choices": ["openid_connect", "key_auth"],
            "source": "body",
            "reason": '\'okta\' is not a strategy type. For Okta DCR use "strategy_type": "openid_connect" and set '
            '"dcr_provider_id" to the id of your okta DCR provider.',
        }
    ]

    ok = await api.client.post(
        "/v2/application-auth-strategies",
        content=strategy_body("openid_connect", provider["id"]),
        headers=page_headers(api.token),
    )
    assert ok.status_code == 201, ok.text
    strategy = ok.json()
    assert strategy["strategy_type"] == "openid_connect"
    assert strategy["dcr_provider"] == {
        "id": provider["id"],
        "name": "DCR Okta",
        "display_name": "DCR Okta",
        "provider_type": "okta",
    }
    assert strategy["configs"]["openid-connect"]["scopes"] == ["openid", "email"]
    assert strategy["supports_multiple_credentials"] is True
    assert strategy["active"] is False


async def test_the_page_literal_provider_id_adds_a_missing_reference(api):
    r = await api.client.post(
        "/v2/application-auth-strategies",
        content=strategy_body("okta", PAGE_PROVIDER_ID),
        headers=page_headers(api.token),
    )
    assert r.status_code == 400
    items = r.json()["invalid_parameters"]
    assert [i["rule"] for i in items] == ["enum", "missing_reference"]
    assert items[1]["field"] == "dcr_provider_id"
    assert PAGE_PROVIDER_ID in items[1]["reason"]


async def test_unexpanded_shell_variable_is_named(api):
    r = await api.client.get("/v2/dcr-providers", headers={"Authorization": "$KPAT"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="keystile"'
    assert "unexpanded shell variable" in r.json()["detail"]
