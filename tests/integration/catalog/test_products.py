"""`/v2/api-products` and product versions (management-api.md §4)."""

from __future__ import annotations

import uuid

from tests.integration.catalog.helpers import default_portal, product, service, version


async def test_default_portal_exists_after_first_start(api):
    portal = await default_portal(api.client)
    assert portal["name"] == "default" and portal["display_name"] == "default"
    assert portal["default_domain"] == "127.0.0.1:8080"
    assert portal["rbac_enabled"] is False and portal["is_public"] is False


async def test_product_create_get_list_with_portals(api):
    portal = await default_portal(api.client)
    r = await api.client.post(
        "/v2/api-products",
        json={"name": "Billing", "description": "Invoices", "labels": {"team": "pay"}, "portal_ids": [portal["id"]]},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == f"/v2/api-products/{body['id']}"
    assert body["portal_ids"] == [portal["id"]]
    assert body["portals"] == [{"portal_id": portal["id"], "portal_name": "default"}]
    assert body["version_count"] == 0 and body["public_labels"] == {} and body["labels"] == {"team": "pay"}
    await version(api.client, body["id"], "v1")
    got = await api.client.get(f"/v2/api-products/{body['id']}")
    assert got.json()["version_count"] == 1
    listed = await api.client.get("/v2/api-products", params={"filter[name][contains]": "bill"})
    assert [p["id"] for p in listed.json()["data"]] == [body["id"]]


async def test_product_rules_in_one_400(api):
    missing = str(uuid.uuid4())
    r = await api.client.post(
        "/v2/api-products", json={"name": "", "portal_ids": [missing], "labels": {"kong-x": "y"}, "other": 1}
    )
    assert r.status_code == 400
    items = {(i["field"], i["rule"]) for i in r.json()["invalid_parameters"]}
    assert ("name", "min_length") in items
    assert ("portal_ids", "missing_reference") in items
    assert ("labels", "is_label") in items
    assert ("other", "unknown_property") in items


async def test_version_name_unique_per_product(api):
    p = await product(api.client)
    await version(api.client, p["id"], "v1")
    r = await api.client.post(f"/v2/api-products/{p['id']}/product-versions", json={"name": "v1"})
    assert r.status_code == 409
    assert "v1" in r.json()["detail"]
    other = await product(api.client, "Other")
    await version(api.client, other["id"], "v1")


async def test_gateway_service_rules(api):
    p = await product(api.client)
    bad = {
        "upstream_url": "ftp://x/a?b=1",
        "paths": ["nope", "/a/../b"],
        "methods": ["FETCH"],
        "connect_timeout_ms": 0,
        "read_timeout_ms": 600001,
    }
    r = await api.client.post(
        f"/v2/api-products/{p['id']}/product-versions", json={"name": "v1", "gateway_service": bad}
    )
    assert r.status_code == 400
    fields = {i["field"]: i for i in r.json()["invalid_parameters"]}
    assert fields["gateway_service.upstream_url"]["rule"] == "type"
    assert fields["gateway_service.paths"]["rule"] == "matches_regex"
    assert fields["gateway_service.methods"]["rule"] == "enum"
    assert fields["gateway_service.connect_timeout_ms"]["rule"] == "min"
    assert fields["gateway_service.read_timeout_ms"] == {
        "field": "gateway_service.read_timeout_ms",
        "rule": "max",
        "reason": "gateway_service.read_timeout_ms must be at most 600000",
        "source": "body",
        "maximum": 600000,
    }
    r = await api.client.post(
        f"/v2/api-products/{p['id']}/product-versions",
        json={"name": "v1", "gateway_service": service("/x", upstream_url="http://u/#frag")},
    )
    assert r.json()["invalid_parameters"][0]["rule"] == "invalid"
    ok = await version(api.client, p["id"], "v1", gateway_service=service("/billing/v1"))
    assert ok["gateway_service"] == {
        "upstream_url": "http://billing.internal:8080/api",
        "paths": ["/billing/v1"],
        "methods": None,
        "strip_path": True,
        "connect_timeout_ms": 5000,
        "read_timeout_ms": 60000,
        "allow_anonymous": False,
    }


async def test_konnect_gateway_service_form_is_refused_with_the_reason(api):
    p = await product(api.client)
    r = await api.client.post(
        f"/v2/api-products/{p['id']}/product-versions",
        json={"name": "v1", "gateway_service": {"control_plane_id": str(uuid.uuid4()), "id": str(uuid.uuid4())}},
    )
    assert r.status_code == 400
    assert r.json()["invalid_parameters"] == [
        {
            "field": "gateway_service.control_plane_id",
            "rule": "unknown_property",
            "reason": "keystile proxies itself: give upstream_url and paths",
            "source": "body",
        },
        {
            "field": "gateway_service.id",
            "rule": "unknown_property",
            "reason": "keystile proxies itself: give upstream_url and paths",
            "source": "body",
        },
    ]


async def test_path_and_method_overlap_names_the_other_version(api):
    a = await product(api.client, "A")
    b = await product(api.client, "B")
    first = await version(api.client, a["id"], "v1", gateway_service=service("/billing", methods=["GET"]))
    r = await api.client.post(
        f"/v2/api-products/{b['id']}/product-versions",
        json={"name": "v1", "gateway_service": service("/billing/v1")},
    )
    assert r.status_code == 409
    assert first["id"] in r.json()["detail"] and "'A'" in r.json()["detail"]
    # another method on the same path, or a sibling path, does not overlap
    await version(api.client, b["id"], "v1", gateway_service=service("/billing/v1", methods=["POST"]))
    await version(api.client, b["id"], "v2", gateway_service=service("/billingx"))
    # PATCH checks against the others, not against itself
    r = await api.client.patch(
        f"/v2/api-products/{a['id']}/product-versions/{first['id']}",
        json={"gateway_service": service("/billing", "/billing/extra", methods=["GET"])},
    )
    assert r.status_code == 200, r.text


async def test_publish_status_and_deprecated_apply_to_portal_versions(api):
    portal = await default_portal(api.client)
    p = await product(api.client)
    v = await version(api.client, p["id"], "v1")
    r = await api.client.put(
        f"/v2/portals/{portal['id']}/product-versions/{v['id']}",
        json={
            "publish_status": "unpublished",
            "application_registration_enabled": False,
            "auto_approve_registration": False,
            "deprecated": False,
            "auth_strategy_ids": [],
        },
    )
    assert r.status_code == 201, r.text
    r = await api.client.patch(
        f"/v2/api-products/{p['id']}/product-versions/{v['id']}",
        json={"publish_status": "published", "deprecated": True},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["publish_status"] == "published" and body["deprecated"] is True
    (entry,) = body["portals"]
    assert entry["portal_id"] == portal["id"] and entry["portal_name"] == "default"
    assert entry["publish_status"] == "published" and entry["deprecated"] is True
    assert entry["auth_strategies"] == []
    ppv = await api.client.get(f"/v2/portals/{portal['id']}/product-versions/{v['id']}")
    assert ppv.json()["publish_status"] == "published" and ppv.json()["deprecated"] is True
    # the product is now listed in the portal
    got = await api.client.get(f"/v2/api-products/{p['id']}")
    assert got.json()["portal_ids"] == [portal["id"]]


async def test_delete_product_and_version(api):
    p = await product(api.client)
    v = await version(api.client, p["id"], "v1")
    assert (await api.client.delete(f"/v2/api-products/{p['id']}/product-versions/{v['id']}")).status_code == 204
    assert (await api.client.get(f"/v2/api-products/{p['id']}/product-versions/{v['id']}")).status_code == 404
    assert (await api.client.delete(f"/v2/api-products/{p['id']}")).status_code == 204
    assert (await api.client.get(f"/v2/api-products/{p['id']}")).status_code == 404
    assert (await api.client.delete(f"/v2/api-products/{p['id']}")).status_code == 404


async def test_creates_are_idempotent(api):
    headers = {"Idempotency-Key": "create-billing-1"}
    first = await api.client.post("/v2/api-products", json={"name": "Billing"}, headers=headers)
    again = await api.client.post("/v2/api-products", json={"name": "Billing"}, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    other = await api.client.post("/v2/api-products", json={"name": "Other"}, headers=headers)
    assert other.status_code == 422
    listed = await api.client.get("/v2/api-products")
    assert listed.json()["meta"]["page"]["total"] == 1


async def test_null_is_refused_for_fields_that_cannot_be_cleared(api):
    p = await product(api.client)
    v = await version(api.client, p["id"])
    r = await api.client.patch(f"/v2/api-products/{p['id']}", json={"name": None, "description": None})
    assert r.status_code == 400
    assert [(i["field"], i["rule"]) for i in r.json()["invalid_parameters"]] == [("name", "is_string")]
    r = await api.client.patch(f"/v2/api-products/{p['id']}/product-versions/{v['id']}", json={"deprecated": None})
    assert r.json()["invalid_parameters"][0]["field"] == "deprecated"
    ok = await api.client.patch(f"/v2/api-products/{p['id']}", json={"description": None})
    assert ok.status_code == 200 and ok.json()["description"] is None


def test_overlap_is_segment_aware():
    from keystile.domain.catalog import overlap

    assert overlap({"paths": ["/a"]}, {"paths": ["/a/b"]}) == "GET /a/b"
    assert overlap({"paths": ["/a/"]}, {"paths": ["/a"]}) is not None
    assert overlap({"paths": ["/"]}, {"paths": ["/x"]}) is not None
    assert overlap({"paths": ["/ab"]}, {"paths": ["/a"]}) is None
    assert overlap({"paths": ["/a"], "methods": ["GET"]}, {"paths": ["/a"], "methods": ["POST"]}) is None
    assert overlap({"paths": ["/a"], "methods": ["PUT"]}, {"paths": ["/a"]}) == "PUT /a"
