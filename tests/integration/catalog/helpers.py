"""Small builders for catalog tests (all through the Management API)."""

from __future__ import annotations

from typing import Any

OIDC_CONFIG = {
    "openid-connect": {
        "issuer": "https://idp.example.com/oauth2/default",
        "credential_claim": ["client_id"],
        "scopes": ["openid"],
        "auth_methods": ["client_credentials", "bearer"],
    }
}


async def default_portal(client) -> dict[str, Any]:
    r = await client.get("/v2/portals", params={"filter[name]": "default"})
    assert r.status_code == 200, r.text
    (portal,) = r.json()["data"]
    return portal


async def product(client, name: str = "Billing", **extra: Any) -> dict[str, Any]:
    r = await client.post("/v2/api-products", json={"name": name, **extra})
    assert r.status_code == 201, r.text
    return r.json()


async def version(client, product_id: str, name: str = "v1", **extra: Any) -> dict[str, Any]:
    r = await client.post(f"/v2/api-products/{product_id}/product-versions", json={"name": name, **extra})
    assert r.status_code == 201, r.text
    return r.json()


async def key_auth_strategy(client, name: str = "keys") -> dict[str, Any]:
    r = await client.post(
        "/v2/application-auth-strategies",
        json={"name": name, "display_name": name, "strategy_type": "key_auth", "configs": {"key-auth": {}}},
    )
    assert r.status_code == 201, r.text
    return r.json()


async def oidc_strategy(client, name: str = "oidc", **configs: Any) -> dict[str, Any]:
    body = {"openid-connect": {**OIDC_CONFIG["openid-connect"], **configs}}
    r = await client.post(
        "/v2/application-auth-strategies",
        json={"name": name, "display_name": name, "strategy_type": "openid_connect", "configs": body},
    )
    assert r.status_code == 201, r.text
    return r.json()


async def publish(
    client, portal_id: str, version_id: str, strategy_id: str | None, *, enabled: bool = True, **extra: Any
) -> dict[str, Any]:
    body = {
        "product_version_id": version_id,
        "publish_status": "published",
        "application_registration_enabled": enabled,
        "auto_approve_registration": False,
        "deprecated": False,
        "auth_strategy_ids": [strategy_id] if strategy_id else [],
        **extra,
    }
    r = await client.post(f"/v2/portals/{portal_id}/product-versions", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def service(*paths: str, **extra: Any) -> dict[str, Any]:
    return {"upstream_url": "http://billing.internal:8080/api", "paths": list(paths), **extra}
