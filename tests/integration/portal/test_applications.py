"""Applications over the Portal API: field rules of §4.1, PATCH rules of §4.3, `provisioning` conflicts, the admin
view, and above all that a developer can never see or touch another developer's applications."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from keystile.services import installation
from keystile.services.context import SYSTEM
from keystile.store.models import Application
from tests.integration.outbox.world import make_world

KEY_AUTH = {
    "name": "keys",
    "display_name": "API key",
    "strategy_type": "key_auth",
    "configs": {"key-auth": {"key_names": ["apikey"], "ttl": {"value": 90, "unit": "days"}}},
}
SELF_MANAGED = {
    "name": "own clients",
    "display_name": "Bring your own client",
    "strategy_type": "openid_connect",
    "configs": {
        "openid-connect": {
            "issuer": "https://idp.example.com",
            "credential_claim": ["client_id"],
            "scopes": ["read"],
            "auth_methods": ["client_credentials"],
        }
    },
}
DCR_PROVIDER = {
    "name": "rfc",
    "provider_type": "rfc7591",
    "issuer": "https://idp.example.com",
    "dcr_config": {"registration_endpoint": "https://idp.example.com/reg", "initial_access_token": "iat-value-1"},
}


def items(response):
    return {(i["field"], i["rule"]): i for i in response.json()["invalid_parameters"]}


async def seed_app(runtime, world, *, name="seeded", status="active", dev=None):
    dev = dev or world.dev
    async with runtime.unit(SYSTEM) as ctx:
        row = Application(
            id=uuid.uuid4(),
            portal_id=world.portal_id,
            developer_id=dev.developer_id,
            auth_strategy_id=uuid.UUID(world.strategy_id),
            name=name,
            status=status,
        )
        ctx.session.add(row)
        await ctx.session.commit()
        return row.id


async def test_key_auth_create_defaults_to_the_portal_strategy_and_holds_no_key(api):
    world = await make_world(api.runtime, api.client, provider=None, strategy=KEY_AUTH)
    async with api.runtime.unit(SYSTEM) as ctx:
        before = await installation.config_version(ctx)
    r = await api.client.post(
        "/api/v2/applications", json={"name": "  reports  ", "reference_id": "corr-1"}, headers=world.as_dev()
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "reports"
    assert body["status"] == "active"
    assert body["reference_id"] == "corr-1"
    assert "credentials" not in body
    assert body["auth_strategy"] == {
        "id": world.strategy_id,
        "name": "API key",
        "credential_type": "key_auth",
        "key_names": ["apikey"],
        "ttl": {"value": 90, "unit": "days"},
        "supports_multiple_credentials": True,
    }
    async with api.runtime.unit(SYSTEM) as ctx:
        assert await installation.config_version(ctx) == before + 1
    offered = await api.client.get("/api/v2/applications/auth-strategies", headers=world.as_dev())
    assert offered.status_code == 200
    assert [s["name"] for s in offered.json()["data"]] == ["API key"]
    assert offered.json()["meta"]["page"]["total"] == 1


async def test_field_rules(api):
    world = await make_world(api.runtime, api.client, provider=None, strategy=KEY_AUTH)
    first = await api.client.post("/api/v2/applications", json={"name": "dup"}, headers=world.as_dev())
    assert first.status_code == 201
    dup = await api.client.post("/api/v2/applications", json={"name": " dup"}, headers=world.as_dev())
    assert dup.status_code == 409
    theirs = await api.client.post("/api/v2/applications", json={"name": "dup"}, headers=world.as_dev(world.other))
    assert theirs.status_code == 201  # unique per developer only

    lonely = await api.client.post(
        "/v2/application-auth-strategies", json={**KEY_AUTH, "name": "not offered", "display_name": "Hidden"}
    )
    bad = await api.client.post(
        "/api/v2/applications",
        json={
            "name": "   ",
            "auth_strategy_id": lonely.json()["id"],
            "redirect_uri": "http://app.example.com/cb",
            "extra": 1,
        },
        headers=world.as_dev(),
    )
    assert bad.status_code == 400
    found = items(bad)
    assert ("name", "min_length") in found
    assert ("auth_strategy_id", "missing_reference") in found
    assert ("redirect_uri", "invalid") in found
    assert ("extra", "unknown_property") in found

    loopback = await api.client.post(
        "/api/v2/applications",
        json={"name": "local", "redirect_uri": "http://127.0.0.1:8080/cb", "scopes": ["read"]},
        headers=world.as_dev(),
    )
    assert loopback.status_code == 400
    assert list(items(loopback)) == [("scopes", "invalid")]  # the loopback http URI itself is fine


async def test_dcr_forbids_reference_id_with_the_exact_reason(api):
    world = await make_world(api.runtime, api.client, provider=DCR_PROVIDER)
    r = await api.client.post("/api/v2/applications", json={"name": "x", "reference_id": "abc"}, headers=world.as_dev())
    assert r.status_code == 400
    assert r.json()["invalid_parameters"] == [
        {
            "field": "reference_id",
            "rule": "invalid",
            "reason": "reference_id cannot be set when using Dynamic Client Registration",
            "source": "body",
        }
    ]
    async with api.runtime.sessions() as session:
        assert (await session.execute(select(Application))).first() is None


async def test_self_managed_needs_a_reference_id_unique_per_strategy(api):
    world = await make_world(api.runtime, api.client, provider=None, strategy=SELF_MANAGED)
    missing = await api.client.post("/api/v2/applications", json={"name": "mine"}, headers=world.as_dev())
    assert missing.status_code == 400
    assert ("reference_id", "required") in items(missing)
    ok = await api.client.post(
        "/api/v2/applications", json={"name": "mine", "reference_id": "client-1"}, headers=world.as_dev()
    )
    assert ok.status_code == 201
    assert ok.json()["auth_strategy"]["credential_type"] == "self_managed_client_credentials"
    taken = await api.client.post(
        "/api/v2/applications", json={"name": "theirs", "reference_id": "client-1"}, headers=world.as_dev(world.other)
    )
    assert taken.status_code == 409


async def test_no_strategy_at_all_is_required(api):
    world = await make_world(api.runtime, api.client, provider=None, strategy=KEY_AUTH)
    async with api.runtime.sessions() as session:
        from keystile.store.models import Portal

        portal = await session.get(Portal, world.portal_id)
        portal.default_application_auth_strategy_id = None
        await session.commit()
    r = await api.client.post("/api/v2/applications", json={"name": "x"}, headers=world.as_dev())
    assert r.status_code == 400
    assert ("auth_strategy_id", "required") in items(r)
    explicit = await api.client.post(
        "/api/v2/applications", json={"name": "x", "auth_strategy_id": world.strategy_id}, headers=world.as_dev()
    )
    assert explicit.status_code == 201  # still offered through the published version


async def test_at_most_500_applications(api):
    world = await make_world(api.runtime, api.client, provider=None, strategy=KEY_AUTH)
    async with api.runtime.unit(SYSTEM) as ctx:
        for i in range(500):
            ctx.session.add(
                Application(
                    portal_id=world.portal_id,
                    developer_id=world.dev.developer_id,
                    auth_strategy_id=uuid.UUID(world.strategy_id),
                    name=f"app-{i}",
                    status="active",
                )
            )
        await ctx.session.commit()
    r = await api.client.post("/api/v2/applications", json={"name": "one more"}, headers=world.as_dev())
    assert r.status_code == 403
    assert r.json()["detail"] == "Maximum number of Applications exceeded. Max Allowed: 500"
    assert r.json()["title"] == "Forbidden"
    others = await api.client.post("/api/v2/applications", json={"name": "one more"}, headers=world.as_dev(world.other))
    assert others.status_code == 201


async def test_patch_rules(api):
    world = await make_world(api.runtime, api.client, provider=None, strategy=KEY_AUTH)
    a = (await api.client.post("/api/v2/applications", json={"name": "a"}, headers=world.as_dev())).json()
    await api.client.post("/api/v2/applications", json={"name": "b"}, headers=world.as_dev())
    fixed = await api.client.patch(
        f"/api/v2/applications/{a['id']}", json={"auth_strategy_id": world.strategy_id}, headers=world.as_dev()
    )
    assert fixed.status_code == 400
    assert fixed.json()["invalid_parameters"] == [
        {
            "field": "auth_strategy_id",
            "rule": "unknown_property",
            "reason": "an application's auth strategy is fixed; create a new application",
            "source": "body",
        }
    ]
    clash = await api.client.patch(f"/api/v2/applications/{a['id']}", json={"name": "b"}, headers=world.as_dev())
    assert clash.status_code == 409
    ok = await api.client.patch(
        f"/api/v2/applications/{a['id']}", json={"description": "reports", "name": "a2"}, headers=world.as_dev()
    )
    assert ok.status_code == 200
    assert (ok.json()["name"], ok.json()["description"]) == ("a2", "reports")
    cleared = await api.client.patch(
        f"/api/v2/applications/{a['id']}", json={"description": None}, headers=world.as_dev()
    )
    assert cleared.json()["description"] is None
    assert cleared.json()["name"] == "a2"


async def test_provisioning_application_answers_409_to_everything_but_reads(api):
    world = await make_world(api.runtime, api.client, provider=None, strategy=KEY_AUTH)
    app_id = await seed_app(api.runtime, world, status="provisioning")
    base = f"/api/v2/applications/{app_id}"
    h = world.as_dev()
    assert (await api.client.get(base, headers=h)).json()["status"] == "provisioning"
    for method, path, body in [
        ("PATCH", base, {"name": "z"}),
        ("DELETE", base, None),
        ("POST", f"{base}/refresh-token", None),
        ("GET", f"{base}/credentials", None),
        ("POST", f"{base}/credentials", {}),
        ("GET", f"{base}/registrations", None),
        ("POST", f"{base}/registrations", {"product_version_id": str(world.version_id)}),
    ]:
        r = await api.client.request(method, path, json=body, headers=h)
        assert r.status_code == 409, (method, path, r.text)


async def test_refresh_token_needs_dcr(api):
    world = await make_world(api.runtime, api.client, provider=None, strategy=KEY_AUTH)
    a = (await api.client.post("/api/v2/applications", json={"name": "a"}, headers=world.as_dev())).json()
    r = await api.client.post(f"/api/v2/applications/{a['id']}/refresh-token", headers=world.as_dev())
    assert r.status_code == 400
    assert list(items(r)) == [("auth_strategy_id", "invalid")]


async def test_admin_views_and_delete(api):
    world = await make_world(api.runtime, api.client, provider=None, strategy=KEY_AUTH)
    a = (await api.client.post("/api/v2/applications", json={"name": "a"}, headers=world.as_dev())).json()
    await api.client.post("/api/v2/applications", json={"name": "b"}, headers=world.as_dev(world.other))
    listed = await api.client.get(
        f"/v2/portals/{world.portal_id}/applications", params={"filter[developer_id]": str(world.dev.developer_id)}
    )
    assert listed.status_code == 200
    [row] = listed.json()["data"]
    assert row["id"] == a["id"]
    assert row["developer"] == {"id": str(world.dev.developer_id), "name": "Jane Dev", "email": world.dev.email}
    assert row["auth_strategy"]["name"] == "keys"
    assert row["registration_count"] == 0
    assert row["dcr_provider"] is None
    one = await api.client.get(f"/v2/applications/{a['id']}")
    assert one.json() == row
    wrong_portal = await api.client.get(f"/v2/portals/{uuid.uuid4()}/applications/{a['id']}")
    assert wrong_portal.status_code == 404
    deleted = await api.client.delete(f"/v2/portals/{world.portal_id}/applications/{a['id']}")
    assert deleted.status_code == 204
    assert (await api.client.get(f"/api/v2/applications/{a['id']}", headers=world.as_dev())).status_code == 404


async def test_a_developer_never_sees_or_touches_another_developers_application(api):
    world = await make_world(api.runtime, api.client, provider=None, strategy=KEY_AUTH)
    h = world.as_dev()
    app = (await api.client.post("/api/v2/applications", json={"name": "mine"}, headers=h)).json()
    base = f"/api/v2/applications/{app['id']}"
    key = (await api.client.post(f"{base}/credentials", json={"display_name": "ci"}, headers=h)).json()
    reg = (
        await api.client.post(f"{base}/registrations", json={"product_version_id": str(world.version_id)}, headers=h)
    ).json()
    mallory = world.as_dev(world.other)
    attempts = [
        ("GET", base, None),
        ("PATCH", base, {"name": "stolen"}),
        ("DELETE", base, None),
        ("POST", f"{base}/refresh-token", None),
        ("GET", f"{base}/credentials", None),
        ("POST", f"{base}/credentials", {"display_name": "x"}),
        ("PUT", f"{base}/credentials/{key['id']}", {"display_name": "x"}),
        ("DELETE", f"{base}/credentials/{key['id']}", None),
        ("GET", f"{base}/registrations", None),
        ("POST", f"{base}/registrations", {"product_version_id": str(world.version_id)}),
        ("GET", f"{base}/registrations/{reg['id']}", None),
        ("DELETE", f"{base}/registrations/{reg['id']}", None),
    ]
    for method, path, body in attempts:
        r = await api.client.request(method, path, json=body, headers=mallory)
        assert r.status_code == 404, (method, path, r.status_code)
        assert r.json()["detail"] == "Not Found"
    assert (await api.client.get("/api/v2/applications", headers=mallory)).json()["data"] == []
    # nothing changed for the owner
    mine = await api.client.get(base, headers=h)
    assert mine.json()["name"] == "mine"
    keys = (await api.client.get(f"{base}/credentials", headers=h)).json()["data"]
    assert [(k["id"], k["status"], k["display_name"]) for k in keys] == [(key["id"], "active", "ci")]
    regs = (await api.client.get(f"{base}/registrations", headers=h)).json()["data"]
    assert [r["id"] for r in regs] == [reg["id"]]
    anonymous = await api.client.get(base, headers={"Authorization": ""})
    assert anonymous.status_code == 401
