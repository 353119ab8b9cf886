"""The developer catalog over HTTP (portal-api.md §3): visibility, private vs public portals, versions with
registration_configs and gateway_urls, spec and operations."""

from __future__ import annotations

import uuid

from sqlalchemy import update

from keystile.store.models import Portal
from tests.integration.portal.conftest import PortalEnv, use_settings
from tests.integration.portal.seed import SPEC_YAML, seed_catalog
from tests.portal_helpers import approved_developer


async def test_private_portal_catalog_needs_a_signed_in_developer(portal_env: PortalEnv):
    env = portal_env
    cat = await seed_catalog(env.runtime, env.portal_id)
    paths = [
        "/api/v2/products",
        f"/api/v2/products/{cat.product_id}",
        f"/api/v2/products/{cat.product_id}/versions",
        f"/api/v2/products/{cat.product_id}/versions/{cat.version_id}",
        f"/api/v2/products/{cat.product_id}/versions/{cat.version_id}/spec",
        f"/api/v2/products/{cat.product_id}/versions/{cat.version_id}/spec/operations",
    ]
    for path in paths:
        r = await env.client.get(path)
        assert r.status_code == 401, path
        assert r.headers["content-type"] == "application/problem+json"
    dev = await approved_developer(env.runtime, portal_id=env.portal_id)
    for path in paths:
        assert (await env.client.get(path, headers=dev.bearer)).status_code == 200, path
    # a pending developer's token no longer works
    async with env.runtime.sessions() as s:
        from keystile.store.models import Developer

        await s.execute(update(Developer).where(Developer.id == dev.developer_id).values(status="pending"))
        await s.commit()
    assert (await env.client.get("/api/v2/products", headers=dev.bearer)).status_code == 401


async def test_public_portal_catalog_is_anonymous(portal_env: PortalEnv):
    env = portal_env
    cat = await seed_catalog(env.runtime, env.portal_id)
    async with env.runtime.sessions() as s:
        await s.execute(update(Portal).where(Portal.id == env.portal_id).values(is_public=True))
        await s.commit()
    r = await env.client.get("/api/v2/products")
    assert r.status_code == 200
    assert [p["id"] for p in r.json()["data"]] == [str(cat.product_id)]
    r = await env.client.get(f"/api/v2/products/{cat.product_id}/versions/{cat.version_id}/spec")
    assert r.status_code == 200


async def test_products_versions_and_visibility(portal_env: PortalEnv):
    env = portal_env
    cat = await seed_catalog(env.runtime, env.portal_id)
    use_settings(env.runtime, gateway_public_url="https://api.example.com/")
    dev = await approved_developer(env.runtime, portal_id=env.portal_id)
    h = dev.bearer

    page = (await env.client.get("/api/v2/products", headers=h)).json()
    assert page["meta"]["page"] == {"number": 1, "size": 100, "total": 1}
    [product] = page["data"]
    assert product["id"] == str(cat.product_id)
    assert product["name"] == "Billing" and product["description"] == "Invoices"
    assert product["document_count"] == 0
    assert product["version_count"] == 2  # v1 and v3 published; v2 not
    assert product["latest_version"] == {"id": str(cat.bare_version_id), "name": "v3"}
    assert product["public_labels"] == {"team": "fin"}
    assert product["created_at"].endswith("Z")

    # filters
    for params, count in (
        ({"filter[name][contains]": "bill"}, 1),
        ({"filter[name]": "Billing"}, 1),
        ({"filter[name][eq]": "billing"}, 0),
        ({"filter[description][contains]": "voice"}, 1),
        ({"filter[id]": str(cat.product_id)}, 1),
        ({"filter[id]": str(uuid.uuid4())}, 0),
        ({"filter[name][contains]": "Internal"}, 0),
    ):
        r = await env.client.get("/api/v2/products", params=params, headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["meta"]["page"]["total"] == count, params
    bad = await env.client.get("/api/v2/products", params={"filter[labels]": "x"}, headers=h)
    assert bad.status_code == 400
    assert bad.json()["invalid_parameters"][0]["rule"] == "unknown_property"

    # not listed in this portal → 404, though one of its versions is published here
    assert (await env.client.get(f"/api/v2/products/{cat.hidden_product_id}", headers=h)).status_code == 404
    assert (await env.client.get(f"/api/v2/products/{uuid.uuid4()}", headers=h)).status_code == 404

    versions = (await env.client.get(f"/api/v2/products/{cat.product_id}/versions", headers=h)).json()
    assert [v["name"] for v in versions["data"]] == ["v1", "v3"]
    v1 = (await env.client.get(f"/api/v2/products/{cat.product_id}/versions/{cat.version_id}", headers=h)).json()
    assert v1["deprecated"] is True
    assert v1["registration_configs"] == [
        {
            "id": str(cat.strategy_id),
            "name": "Okta machine access",
            "credential_type": "client_credentials",
            "auth_methods": ["client_credentials", "bearer"],
            "available_scopes": [],
            "registration_enabled": True,
            "registration_auto_approve": False,
        }
    ]
    assert "okta" not in str(v1).lower().replace("okta machine access", "")  # provider never shown
    assert v1["gateway_urls"] == ["https://api.example.com/billing/v1", "https://api.example.com/invoices/v1"]
    v3 = (await env.client.get(f"/api/v2/products/{cat.product_id}/versions/{cat.bare_version_id}", headers=h)).json()
    assert v3["registration_configs"] == [] and v3["gateway_urls"] == [] and v3["deprecated"] is False
    r = await env.client.get(f"/api/v2/products/{cat.product_id}/versions/{cat.unpublished_version_id}", headers=h)
    assert r.status_code == 404

    # the portal's auto_approve_applications shows as registration_auto_approve
    async with env.runtime.sessions() as s:
        await s.execute(update(Portal).where(Portal.id == env.portal_id).values(auto_approve_applications=True))
        await s.commit()
    v1 = (await env.client.get(f"/api/v2/products/{cat.product_id}/versions/{cat.version_id}", headers=h)).json()
    assert v1["registration_configs"][0]["registration_auto_approve"] is True

    # gateway_urls are empty without KEYSTILE_GATEWAY_PUBLIC_URL
    use_settings(env.runtime, gateway_public_url=None)
    v1 = (await env.client.get(f"/api/v2/products/{cat.product_id}/versions/{cat.version_id}", headers=h)).json()
    assert v1["gateway_urls"] == []


async def test_spec_and_operations(portal_env: PortalEnv):
    env = portal_env
    cat = await seed_catalog(env.runtime, env.portal_id)
    h = (await approved_developer(env.runtime, portal_id=env.portal_id)).bearer
    base = f"/api/v2/products/{cat.product_id}/versions"
    spec = await env.client.get(f"{base}/{cat.version_id}/spec", headers=h)
    assert spec.status_code == 200
    assert spec.json() == {"api_type": "openapi", "content": SPEC_YAML}
    ops = await env.client.get(f"{base}/{cat.version_id}/spec/operations", headers=h)
    assert ops.status_code == 200
    assert ops.json() == {
        "api_type": "openapi",
        "operations": [
            {
                "path": "/invoices",
                "method": "get",
                "operation_id": "listInvoices",
                "tags": ["invoices"],
                "summary": "List invoices",
                "deprecated": False,
            },
            {
                "path": "/invoices",
                "method": "post",
                "operation_id": "createInvoice",
                "tags": [],
                "summary": None,
                "deprecated": True,
            },
            {
                "path": "/invoices/{id}",
                "method": "delete",
                "operation_id": None,
                "tags": [],
                "summary": None,
                "deprecated": False,
            },
        ],
    }
    for suffix in ("spec", "spec/operations"):
        r = await env.client.get(f"{base}/{cat.bare_version_id}/{suffix}", headers=h)
        assert r.status_code == 204 and r.content == b""
        r = await env.client.get(f"{base}/{cat.unpublished_version_id}/{suffix}", headers=h)
        assert r.status_code == 404
