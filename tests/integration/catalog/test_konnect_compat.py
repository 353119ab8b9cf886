"""Responses of the mirrored catalog and portal operations validate against Konnect's published schemas
(`shared/specs/konnect/api-products-v2.yaml`, `portal-management-v2.yaml`, read in place), extension fields aside:
keystile's extra properties (`additionalProperties` errors) and the `gateway_service` extension object."""

from __future__ import annotations

import base64
import copy
import functools
from typing import Any

from openapi_schema_validator import OAS30Validator

from tests.integration.catalog.helpers import default_portal, key_auth_strategy, product, publish, service, version
from tests.konnect_specs import resolve, spec

PRODUCTS = "api-products-v2.yaml"
PORTALS = "portal-management-v2.yaml"


def _schema_for(doc: dict[str, Any], path: str, method: str, status: int) -> Any:
    operation = doc["paths"][path][method]
    response = resolve(doc, operation["responses"][str(status)])
    return response["content"]["application/json"]["schema"]


def _without_extensions(instance: Any) -> Any:
    """`gateway_service` is a keystile extension (Konnect's shape is {id, control_plane_id})."""
    out = copy.deepcopy(instance)
    items = out.get("data", [out]) if isinstance(out, dict) else []
    for item in items:
        if isinstance(item, dict) and item.get("gateway_service") is not None:
            item["gateway_service"] = None
    return out


def _strip_discriminators(node: Any) -> Any:
    """Konnect's `AuthStrategy` has a discriminator without a `mapping`, which a validator resolves to
    `#/components/schemas/<value>` (absent); its `oneOf` alone says the same thing, so validate that."""
    if isinstance(node, dict):
        return {k: _strip_discriminators(v) for k, v in node.items() if k != "discriminator"}
    if isinstance(node, list):
        return [_strip_discriminators(v) for v in node]
    return node


@functools.cache
def _doc(name: str) -> dict[str, Any]:
    stripped: dict[str, Any] = _strip_discriminators(spec(name))
    return stripped


def konnect_errors(name: str, path: str, method: str, status: int, instance: Any) -> list[str]:
    doc = _doc(name)
    schema = _schema_for(doc, path, method, status)
    root = (
        {**schema, "components": doc["components"]}
        if "$ref" not in schema
        else {
            "$ref": schema["$ref"],
            "components": doc["components"],
        }
    )
    validator = OAS30Validator(root)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(_without_extensions(instance))
        if e.validator != "additionalProperties"
    ]


def test_the_checker_can_fail():
    bad = {"id": "not-a-portal", "name": 3}
    assert konnect_errors(PORTALS, "/portals/{portalId}", "get", 200, bad)


async def test_api_product_operations(api):
    portal = await default_portal(api.client)
    r = await api.client.post("/v2/api-products", json={"name": "Billing", "portal_ids": [portal["id"]]})
    assert konnect_errors(PRODUCTS, "/api-products", "post", 201, r.json()) == []
    pid = r.json()["id"]
    r = await api.client.get("/v2/api-products")
    assert konnect_errors(PRODUCTS, "/api-products", "get", 200, r.json()) == []
    r = await api.client.get(f"/v2/api-products/{pid}")
    assert konnect_errors(PRODUCTS, "/api-products/{id}", "get", 200, r.json()) == []
    r = await api.client.patch(f"/v2/api-products/{pid}", json={"description": None, "labels": {"a": "b"}})
    assert konnect_errors(PRODUCTS, "/api-products/{id}", "patch", 200, r.json()) == []


async def test_product_version_and_specification_operations(api):
    portal = await default_portal(api.client)
    strategy = await key_auth_strategy(api.client)
    p = await product(api.client)
    base = f"/v2/api-products/{p['id']}/product-versions"
    r = await api.client.post(base, json={"name": "v1", "gateway_service": service("/compat")})
    assert r.status_code == 201
    assert konnect_errors(PRODUCTS, "/api-products/{apiProductId}/product-versions", "post", 201, r.json()) == []
    vid = r.json()["id"]
    await publish(api.client, portal["id"], vid, strategy["id"])
    plain = await version(api.client, p["id"], "v2")
    r = await api.client.get(base)
    assert konnect_errors(PRODUCTS, "/api-products/{apiProductId}/product-versions", "get", 200, r.json()) == []
    r = await api.client.get(f"{base}/{vid}")
    assert r.json()["portals"][0]["auth_strategies"] == [{"id": strategy["id"], "name": "keys"}]
    assert konnect_errors(PRODUCTS, "/api-products/{apiProductId}/product-versions/{id}", "get", 200, r.json()) == []
    r = await api.client.patch(f"{base}/{plain['id']}", json={"name": "v2.1"})
    assert konnect_errors(PRODUCTS, "/api-products/{apiProductId}/product-versions/{id}", "patch", 200, r.json()) == []
    specs = f"{base}/{vid}/specifications"
    doc = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n"
    r = await api.client.post(specs, json={"name": "a.yaml", "content": base64.b64encode(doc.encode()).decode()})
    assert r.status_code == 201
    spec_path = "/api-products/{apiProductId}/product-versions/{apiProductVersionId}/specifications"
    assert konnect_errors(PRODUCTS, spec_path, "post", 201, r.json()) == []
    sid = r.json()["id"]
    r = await api.client.get(specs)
    assert konnect_errors(PRODUCTS, spec_path, "get", 200, r.json()) == []
    r = await api.client.get(f"{specs}/{sid}")
    assert konnect_errors(PRODUCTS, spec_path + "/{specificationId}", "get", 200, r.json()) == []
    r = await api.client.patch(f"{specs}/{sid}", json={"name": "b.yaml"})
    assert konnect_errors(PRODUCTS, spec_path + "/{specificationId}", "patch", 200, r.json()) == []


async def test_portal_operations(api):
    strategy = await key_auth_strategy(api.client)
    r = await api.client.post(
        "/v2/portals", json={"name": "partners", "default_application_auth_strategy_id": strategy["id"]}
    )
    assert konnect_errors(PORTALS, "/portals", "post", 201, r.json()) == []
    portal_id = r.json()["id"]
    r = await api.client.get("/v2/portals")
    assert konnect_errors(PORTALS, "/portals", "get", 200, r.json()) == []
    r = await api.client.get(f"/v2/portals/{portal_id}")
    assert konnect_errors(PORTALS, "/portals/{portalId}", "get", 200, r.json()) == []
    r = await api.client.patch(f"/v2/portals/{portal_id}", json={"custom_client_domain": "dev.example.com"})
    assert konnect_errors(PORTALS, "/portals/{portalId}", "patch", 200, r.json()) == []


async def test_portal_product_version_operations(api):
    portal = await default_portal(api.client)
    strategy = await key_auth_strategy(api.client)
    p = await product(api.client)
    v1 = await version(api.client, p["id"], "v1")
    v2 = await version(api.client, p["id"], "v2")
    collection = "/portals/{portalId}/product-versions"
    item = collection + "/{productVersionId}"
    created = await publish(api.client, portal["id"], v1["id"], strategy["id"])
    assert konnect_errors(PORTALS, collection, "post", 201, created) == []
    base = f"/v2/portals/{portal['id']}/product-versions"
    r = await api.client.get(base)
    assert konnect_errors(PORTALS, collection, "get", 200, r.json()) == []
    r = await api.client.get(f"{base}/{v1['id']}")
    assert konnect_errors(PORTALS, item, "get", 200, r.json()) == []
    r = await api.client.patch(f"{base}/{v1['id']}", json={"deprecated": True})
    assert konnect_errors(PORTALS, item, "patch", 200, r.json()) == []
    body = {
        "publish_status": "unpublished",
        "application_registration_enabled": False,
        "auto_approve_registration": False,
        "deprecated": False,
        "auth_strategy_ids": [],
    }
    r = await api.client.put(f"{base}/{v2['id']}", json=body)
    assert r.status_code == 201
    assert konnect_errors(PORTALS, item, "put", 200, r.json()) == []
