"""`/v2/portals` and portal product versions (management-api.md §5), and what references a strategy."""

from __future__ import annotations

import uuid

from keystile.services.context import SYSTEM
from keystile.store.models import Application, Developer, Registration
from tests.integration.catalog.helpers import (
    default_portal,
    key_auth_strategy,
    oidc_strategy,
    product,
    publish,
    version,
)


async def _portal(api, name: str, **extra) -> dict:
    r = await api.client.post("/v2/portals", json={"name": name, **extra})
    assert r.status_code == 201, r.text
    return r.json()


async def _seed_registration(api, portal_id: str, strategy_id: str, version_id: str, status: str = "approved"):
    async with api.runtime.unit(SYSTEM) as ctx:
        dev = Developer(portal_id=uuid.UUID(portal_id), email=f"{uuid.uuid4().hex[:6]}@x.io", full_name="D")
        ctx.session.add(dev)
        await ctx.session.flush()
        app = Application(
            portal_id=uuid.UUID(portal_id),
            developer_id=dev.id,
            auth_strategy_id=uuid.UUID(strategy_id),
            name="app",
            status="active",
        )
        ctx.session.add(app)
        await ctx.session.flush()
        reg = Registration(
            application_id=app.id,
            product_version_id=uuid.UUID(version_id),
            portal_id=uuid.UUID(portal_id),
            status=status,
        )
        ctx.session.add(reg)
        await ctx.session.commit()
        return app.id, reg.id


async def test_portal_create_defaults_and_counts(api):
    strategy = await key_auth_strategy(api.client)
    r = await api.client.post(
        "/v2/portals",
        json={
            "name": "partners",
            "description": "for partners",
            "custom_domain": "Partners.Example.com",
            "default_application_auth_strategy_id": strategy["id"],
            "labels": {"env": "prod"},
        },
    )
    assert r.status_code == 201, r.text
    portal = r.json()
    assert r.headers["location"] == f"/v2/portals/{portal['id']}"
    assert portal["display_name"] == "partners" and portal["custom_domain"] == "partners.example.com"
    assert portal["is_public"] is False and portal["auto_approve_developers"] is False
    assert portal["revoke_on_developer_revoke"] is True
    assert portal["default_application_auth_strategy_id"] == strategy["id"]
    assert (portal["application_count"], portal["developer_count"], portal["published_product_count"]) == (0, 0, 0)
    p = await product(api.client)
    v = await version(api.client, p["id"])
    await publish(api.client, portal["id"], v["id"], strategy["id"])
    await _seed_registration(api, portal["id"], strategy["id"], v["id"])
    got = (await api.client.get(f"/v2/portals/{portal['id']}")).json()
    assert (got["application_count"], got["developer_count"], got["published_product_count"]) == (1, 1, 1)
    listed = await api.client.get("/v2/portals", params={"sort": "name"})
    assert [x["name"] for x in listed.json()["data"]] == ["default", "partners"]
    taken = await api.client.post("/v2/portals", json={"name": "partners"})
    assert taken.status_code == 409
    domain = await api.client.post("/v2/portals", json={"name": "other", "custom_domain": "partners.example.com"})
    assert domain.status_code == 409


async def test_portal_field_rules(api):
    missing = str(uuid.uuid4())
    r = await api.client.post(
        "/v2/portals",
        json={
            "name": "x" * 256,
            "rbac_enabled": True,
            "default_application_auth_strategy_id": missing,
            "custom_domain": "https://nope/",
            "description": "d" * 513,
        },
    )
    assert r.status_code == 400
    items = {i["field"]: i for i in r.json()["invalid_parameters"]}
    assert items["name"]["rule"] == "max_length"
    assert items["rbac_enabled"] == {
        "field": "rbac_enabled",
        "rule": "invalid",
        "reason": "rbac_enabled cannot be true: keystile has no developer teams yet",
        "source": "body",
    }
    assert items["default_application_auth_strategy_id"]["rule"] == "missing_reference"
    assert items["custom_domain"]["rule"] == "type"
    assert items["description"]["rule"] == "max_length"
    portal = await default_portal(api.client)
    r = await api.client.patch(f"/v2/portals/{portal['id']}", json={"rbac_enabled": True})
    assert r.status_code == 400
    r = await api.client.patch(
        f"/v2/portals/{portal['id']}", json={"display_name": "Developers", "auto_approve_developers": True}
    )
    assert r.status_code == 200
    assert r.json()["display_name"] == "Developers" and r.json()["auto_approve_developers"] is True


async def test_delete_rules(api):
    default = await default_portal(api.client)
    last = await api.client.delete(f"/v2/portals/{default['id']}")
    assert last.status_code == 409 and "last portal" in last.json()["detail"]
    strategy = await key_auth_strategy(api.client)
    other = await _portal(api, "other")
    p = await product(api.client)
    v = await version(api.client, p["id"])
    await publish(api.client, other["id"], v["id"], strategy["id"])
    refused = await api.client.delete(f"/v2/portals/{other['id']}")
    assert refused.status_code == 400
    (item,) = refused.json()["invalid_parameters"]
    assert item["field"] == "force" and item["rule"] == "required" and item["source"] == "query"
    assert "0 developers and 1 product versions" in item["reason"]
    await _seed_registration(api, other["id"], strategy["id"], v["id"])
    forced = await api.client.delete(f"/v2/portals/{other['id']}?force=true")
    assert forced.status_code == 204, forced.text
    assert (await api.client.get(f"/v2/portals/{other['id']}")).status_code == 404
    assert (await api.client.get(f"/v2/api-products/{p['id']}")).json()["portal_ids"] == []
    empty = await _portal(api, "empty")
    assert (await api.client.delete(f"/v2/portals/{empty['id']}")).status_code == 204


async def test_portal_product_version_rules(api):
    portal = await default_portal(api.client)
    base = f"/v2/portals/{portal['id']}/product-versions"
    a = await key_auth_strategy(api.client, "a")
    b = await key_auth_strategy(api.client, "b")
    p = await product(api.client)
    v = await version(api.client, p["id"])
    r = await api.client.post(base, json={"product_version_id": v["id"]})
    assert r.status_code == 400
    required = {i["field"] for i in r.json()["invalid_parameters"] if i["rule"] == "required"}
    assert required == {
        "publish_status",
        "application_registration_enabled",
        "auto_approve_registration",
        "deprecated",
        "auth_strategy_ids",
    }
    body = {
        "product_version_id": str(uuid.uuid4()),
        "publish_status": "published",
        "application_registration_enabled": True,
        "auto_approve_registration": False,
        "deprecated": False,
        "auth_strategy_ids": [a["id"], b["id"]],
    }
    r = await api.client.post(base, json=body)
    items = {i["field"]: i for i in r.json()["invalid_parameters"]}
    assert items["auth_strategy_ids"]["rule"] == "max_items" and items["auth_strategy_ids"]["maximum"] == 1
    assert items["product_version_id"]["rule"] == "missing_reference"
    r = await api.client.post(
        base, json={**body, "product_version_id": v["id"], "auth_strategy_ids": [str(uuid.uuid4())]}
    )
    assert r.json()["invalid_parameters"][0]["field"] == "auth_strategy_ids[0]"
    assert r.json()["invalid_parameters"][0]["rule"] == "missing_reference"
    r = await api.client.post(base, json={**body, "product_version_id": v["id"], "auth_strategy_ids": []})
    assert r.json()["invalid_parameters"] == [
        {
            "field": "application_registration_enabled",
            "rule": "dependent_fields",
            "reason": "application_registration_enabled needs an auth strategy: give auth_strategy_ids with one "
            "strategy id",
            "source": "body",
            "dependents": ["auth_strategy_ids"],
        }
    ]
    created = await publish(api.client, portal["id"], v["id"], a["id"])
    assert created["auth_strategies"] == [
        {"id": a["id"], "name": "a", "credential_type": "key_auth", "key_names": ["apikey"]}
    ]
    assert created["product_version_id"] == v["id"]
    dup = await api.client.post(base, json={**body, "product_version_id": v["id"], "auth_strategy_ids": [a["id"]]})
    assert dup.status_code == 409
    # the product is now in the portal, and the strategy is active
    assert (await api.client.get(f"/v2/api-products/{p['id']}")).json()["portal_ids"] == [portal["id"]]
    assert (await api.client.get(f"/v2/application-auth-strategies/{a['id']}")).json()["active"] is True
    assert (await api.client.get(f"/v2/application-auth-strategies/{b['id']}")).json()["active"] is False
    listed = await api.client.get(base, params={"filter[publish_status]": "published", "filter[deprecated]": "false"})
    assert [x["id"] for x in listed.json()["data"]] == [created["id"]]
    # PATCH: disabling registration and dropping the strategy is fine without registrations
    r = await api.client.patch(f"{base}/{v['id']}", json={"auth_strategy_ids": []})
    assert r.status_code == 400 and r.json()["invalid_parameters"][0]["rule"] == "dependent_fields"
    r = await api.client.patch(f"{base}/{v['id']}", json={"auth_strategy_ids": [b["id"]], "deprecated": True})
    assert r.status_code == 200 and [s["id"] for s in r.json()["auth_strategies"]] == [b["id"]]
    assert r.json()["deprecated"] is True
    # registrations of applications on the current strategy block replacing it
    await _seed_registration(api, portal["id"], b["id"], v["id"], status="pending")
    r = await api.client.patch(f"{base}/{v['id']}", json={"auth_strategy_ids": [a["id"]]})
    assert r.status_code == 409 and "'b'" in r.json()["detail"]
    put = {k: body[k] for k in body if k != "product_version_id"}
    r = await api.client.put(f"{base}/{v['id']}", json={**put, "auth_strategy_ids": [a["id"]]})
    assert r.status_code == 409
    r = await api.client.put(f"{base}/{v['id']}", json={**put, "auth_strategy_ids": [b["id"]], "deprecated": False})
    assert r.status_code == 200 and r.json()["deprecated"] is False
    # the strategy is referenced: deleting it is refused with the referrers named
    r = await api.client.delete(f"/v2/application-auth-strategies/{b['id']}")
    assert r.status_code == 409 and "in portal 'default'" in r.json()["detail"]
    assert (await api.client.delete(f"{base}/{v['id']}")).status_code == 204
    assert (await api.client.get(f"{base}/{v['id']}")).status_code == 404


async def test_put_creates_when_absent(api):
    portal = await default_portal(api.client)
    oidc = await oidc_strategy(api.client)
    p = await product(api.client)
    v = await version(api.client, p["id"])
    body = {
        "publish_status": "published",
        "application_registration_enabled": True,
        "auto_approve_registration": True,
        "deprecated": False,
        "auth_strategy_ids": [oidc["id"]],
    }
    url = f"/v2/portals/{portal['id']}/product-versions/{v['id']}"
    first = await api.client.put(url, json=body)
    assert first.status_code == 201 and first.headers["location"] == url
    second = await api.client.put(url, json={**body, "auto_approve_registration": False, "notify_developers": True})
    assert second.status_code == 200 and second.json()["id"] == first.json()["id"]
    assert second.json()["auto_approve_registration"] is False
    unknown = await api.client.put(f"/v2/portals/{portal['id']}/product-versions/{uuid.uuid4()}", json=body)
    assert unknown.status_code == 404
    portals = (await api.client.get(f"/v2/api-products/{p['id']}/product-versions/{v['id']}")).json()["portals"]
    assert portals == [
        {
            "portal_id": portal["id"],
            "portal_name": "default",
            "portal_product_version_id": first.json()["id"],
            "publish_status": "published",
            "deprecated": False,
            "application_registration_enabled": True,
            "auto_approve_registration": False,
            "auth_strategies": [{"id": oidc["id"], "name": "oidc"}],
        }
    ]


async def test_product_portal_removal_and_deletes_guarded_by_registrations(api):
    portal = await default_portal(api.client)
    other = await _portal(api, "other")
    strategy = await key_auth_strategy(api.client)
    p = await product(api.client, portal_ids=[portal["id"], other["id"]])
    v = await version(api.client, p["id"])
    await publish(api.client, portal["id"], v["id"], strategy["id"])
    await _seed_registration(api, portal["id"], strategy["id"], v["id"])
    r = await api.client.patch(f"/v2/api-products/{p['id']}", json={"portal_ids": [other["id"]]})
    assert r.status_code == 409 and "'default'" in r.json()["detail"]
    r = await api.client.patch(f"/v2/api-products/{p['id']}", json={"portal_ids": [portal["id"]]})
    assert r.status_code == 200 and r.json()["portal_ids"] == [portal["id"]]
    r = await api.client.delete(f"/v2/api-products/{p['id']}/product-versions/{v['id']}")
    assert r.status_code == 409 and "force=true" in r.json()["detail"]
    r = await api.client.delete(f"/v2/api-products/{p['id']}")
    assert r.status_code == 409
    r = await api.client.delete(f"/v2/api-products/{p['id']}?force=true")
    assert r.status_code == 204
    apps = await api.client.get(f"/v2/portals/{portal['id']}")
    assert apps.json()["published_product_count"] == 0


async def test_notify_developers_when_deprecated(api, tmp_path):
    outbox = tmp_path / "mail"
    outbox.mkdir()
    api.runtime.settings.mail_outbox = outbox
    portal = await default_portal(api.client)
    strategy = await key_auth_strategy(api.client)
    p = await product(api.client, "Billing")
    v = await version(api.client, p["id"], "v1")
    await publish(api.client, portal["id"], v["id"], strategy["id"])
    await _seed_registration(api, portal["id"], strategy["id"], v["id"])
    url = f"/v2/portals/{portal['id']}/product-versions/{v['id']}"
    r = await api.client.patch(url, json={"deprecated": True})
    assert r.status_code == 200 and list(outbox.iterdir()) == []  # not asked to notify
    await api.client.patch(url, json={"deprecated": False})
    r = await api.client.patch(url, json={"deprecated": True, "notify_developers": True})
    assert r.status_code == 200
    (sent,) = list(outbox.iterdir())
    text = sent.read_text()
    assert "Subject: Billing v1 is deprecated" in text and "@x.io" in text
    r = await api.client.patch(url, json={"deprecated": True, "notify_developers": True})
    assert len(list(outbox.iterdir())) == 1  # already deprecated: nothing new to tell


async def test_strategy_referrers_block_its_delete(api):
    strategy = await key_auth_strategy(api.client, "keys")
    portal = await _portal(api, "partners", default_application_auth_strategy_id=strategy["id"])
    r = await api.client.delete(f"/v2/application-auth-strategies/{strategy['id']}")
    assert r.status_code == 409 and f"portal 'partners' ({portal['id']})" in r.json()["detail"]
    await api.client.patch(f"/v2/portals/{portal['id']}", json={"default_application_auth_strategy_id": None})
    p = await product(api.client)
    v = await version(api.client, p["id"])
    app_id, _ = await _seed_registration(api, portal["id"], strategy["id"], v["id"])
    r = await api.client.delete(f"/v2/application-auth-strategies/{strategy['id']}")
    assert r.status_code == 409 and f"application 'app' ({app_id})" in r.json()["detail"]
    assert (await api.client.get(f"/v2/application-auth-strategies/{strategy['id']}")).json()["active"] is False


async def test_portal_nulls_refused(api):
    portal = await default_portal(api.client)
    r = await api.client.patch(f"/v2/portals/{portal['id']}", json={"is_public": None, "custom_domain": None})
    assert r.status_code == 400
    assert [(i["field"], i["rule"]) for i in r.json()["invalid_parameters"]] == [("is_public", "is_boolean")]
