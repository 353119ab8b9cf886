"""Admin developer endpoints (management-api.md §5) and the status semantics of portal-api.md §2.2."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select, update

from keystile.services import installation
from keystile.services.context import SYSTEM
from keystile.store.models import Application, AuthStrategy, Developer, IdpOperation, Portal, Registration
from tests.integration.portal.conftest import PortalEnv
from tests.integration.portal.seed import seed_application, seed_catalog
from tests.portal_helpers import approved_developer


async def config_version(env: PortalEnv) -> int:
    async with env.runtime.unit(SYSTEM) as ctx:
        return await installation.config_version(ctx)


async def registration_statuses(env: PortalEnv, app_id: uuid.UUID) -> dict[uuid.UUID, str]:
    async with env.runtime.sessions() as s:
        rows = await s.execute(
            select(Registration.product_version_id, Registration.status).where(Registration.application_id == app_id)
        )
        return {r[0]: r[1] for r in rows}


async def test_list_filter_sort_and_get(portal_env: PortalEnv):
    env = portal_env
    cat = await seed_catalog(env.runtime, env.portal_id)
    ann = await approved_developer(env.runtime, email="ann@example.com", full_name="Ann Admin")
    bob = await approved_developer(env.runtime, email="bob@example.com", full_name="Bob Builder")
    await seed_application(env.runtime, env.portal_id, bob.developer_id, cat.key_strategy_id, {}, name="a1")
    await seed_application(env.runtime, env.portal_id, bob.developer_id, cat.key_strategy_id, {}, name="a2")
    # an unverified sign-up is not a developer yet
    await env.client.post("/api/v2/developer", json={"email": "new@example.com", "full_name": "Newbie"})
    async with env.runtime.sessions() as s:
        await s.execute(update(Developer).where(Developer.id == bob.developer_id).values(status="pending"))
        await s.commit()

    base = f"/v2/portals/{env.portal_id}/developers"
    r = await env.admin.get(base)
    assert r.status_code == 200
    body = r.json()
    assert body["meta"]["page"]["total"] == 2
    by_email = {d["email"]: d for d in body["data"]}
    assert set(by_email) == {"ann@example.com", "bob@example.com"}
    assert by_email["bob@example.com"]["application_count"] == 2
    assert by_email["bob@example.com"]["status"] == "pending"
    assert set(by_email["ann@example.com"]) == {
        "id",
        "email",
        "full_name",
        "status",
        "application_count",
        "created_at",
        "updated_at",
    }
    for params, emails in (
        ({"filter[status]": "pending"}, ["bob@example.com"]),
        ({"filter[name][contains]": "builder"}, ["bob@example.com"]),
        ({"filter[email]": "ann@example.com"}, ["ann@example.com"]),
        ({"sort": "email desc"}, ["bob@example.com", "ann@example.com"]),
        ({"sort": "name"}, ["ann@example.com", "bob@example.com"]),
    ):
        r = await env.admin.get(base, params=params)
        assert [d["email"] for d in r.json()["data"]] == emails, params
    r = await env.admin.get(base, params={"sort": "password"})
    assert r.status_code == 400
    assert r.json()["invalid_parameters"][0]["rule"] == "enum"

    r = await env.admin.get(f"{base}/{ann.developer_id}")
    assert r.status_code == 200
    assert r.json()["full_name"] == "Ann Admin"
    assert (await env.admin.get(f"{base}/{uuid.uuid4()}")).status_code == 404
    assert (await env.admin.get(f"/v2/portals/{uuid.uuid4()}/developers")).status_code == 404
    assert (await env.client.get(base)).status_code == 401  # admin token required


async def test_revoke_ends_sessions_and_revokes_registrations(portal_env: PortalEnv):
    env = portal_env
    cat = await seed_catalog(env.runtime, env.portal_id)
    dev = await approved_developer(env.runtime)
    app_id = await seed_application(
        env.runtime,
        env.portal_id,
        dev.developer_id,
        cat.key_strategy_id,
        {cat.version_id: "approved", cat.bare_version_id: "pending", cat.unpublished_version_id: "rejected"},
    )
    before = await config_version(env)
    assert (await env.client.get("/api/v2/developer/me", headers=dev.bearer)).status_code == 200

    url = f"/v2/portals/{env.portal_id}/developers/{dev.developer_id}"
    r = await env.admin.patch(url, json={"status": "revoked"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "revoked"
    assert await registration_statuses(env, app_id) == {
        cat.version_id: "revoked",
        cat.bare_version_id: "revoked",
        cat.unpublished_version_id: "rejected",
    }
    assert await config_version(env) > before
    assert (await env.client.get("/api/v2/developer/me", headers=dev.bearer)).status_code == 401

    # re-approval restores nothing
    r = await env.admin.patch(url, json={"status": "approved"})
    assert r.json()["status"] == "approved"
    assert (await registration_statuses(env, app_id))[cat.version_id] == "revoked"

    audit = await env.admin.get("/v2/audit-logs", params={"filter[action]": "developer.update"})
    changes = [e["changes"] for e in audit.json()["data"]]
    assert {
        "status": {"from": "approved", "to": "revoked"},
        "registrations_revoked": {"from": None, "to": 2},
    } in changes


async def test_revoke_without_revoke_on_developer_revoke_behaves_as_konnect(portal_env: PortalEnv):
    env = portal_env
    cat = await seed_catalog(env.runtime, env.portal_id)
    async with env.runtime.sessions() as s:
        await s.execute(update(Portal).where(Portal.id == env.portal_id).values(revoke_on_developer_revoke=False))
        await s.commit()
    dev = await approved_developer(env.runtime)
    app_id = await seed_application(
        env.runtime, env.portal_id, dev.developer_id, cat.key_strategy_id, {cat.version_id: "approved"}
    )
    before = await config_version(env)
    r = await env.admin.patch(f"/v2/portals/{env.portal_id}/developers/{dev.developer_id}", json={"status": "rejected"})
    assert r.status_code == 200
    assert await registration_statuses(env, app_id) == {cat.version_id: "approved"}
    assert await config_version(env) == before
    # the developer can no longer sign in or use the portal
    assert (await env.client.get("/api/v2/developer/me", headers=dev.bearer)).status_code == 401


async def test_pending_blocks_sign_in_and_approval_allows_it(portal_env: PortalEnv):
    env = portal_env
    r = await env.client.post("/api/v2/developer", json={"email": "wait@example.com", "full_name": "Waiting"})
    assert r.status_code == 201
    verify = await env.client.post("/api/v2/developer/verify-email", json={"token": env.last_token("wait@example.com")})
    password = "a sufficiently long password"
    await env.client.post(
        "/api/v2/developer/reset-password", json={"token": verify.json()["token"], "password": password}
    )
    creds = {"username": "wait@example.com", "password": password}
    r = await env.client.post("/api/v2/developer/authenticate", json=creds)
    assert r.json()["title"] == "Approval Required"
    [listed] = (
        await env.admin.get(f"/v2/portals/{env.portal_id}/developers", params={"filter[status]": "pending"})
    ).json()["data"]
    r = await env.admin.patch(f"/v2/portals/{env.portal_id}/developers/{listed['id']}", json={"status": "approved"})
    assert r.status_code == 200
    assert (await env.client.post("/api/v2/developer/authenticate", json=creds)).status_code == 204


async def test_patch_validation(portal_env: PortalEnv):
    env = portal_env
    dev = await approved_developer(env.runtime)
    url = f"/v2/portals/{env.portal_id}/developers/{dev.developer_id}"
    r = await env.admin.patch(url, json={"status": "deleted"})
    assert r.status_code == 400
    item = r.json()["invalid_parameters"][0]
    assert item["field"] == "status" and item["rule"] == "enum"
    assert item["choices"] == ["approved", "pending", "revoked", "rejected"]
    r = await env.admin.patch(url, json={"status": "approved", "email": "x@example.com"})
    assert r.status_code == 400
    assert r.json()["invalid_parameters"][0]["rule"] == "unknown_property"
    assert (
        await env.admin.patch(f"/v2/portals/{env.portal_id}/developers/{uuid.uuid4()}", json={"status": "approved"})
    ).status_code == 404
    # another portal's developer is not found through this portal
    async with env.runtime.sessions() as s:
        other = Portal(id=uuid.uuid4(), name="other", display_name="Other")
        s.add(other)
        await s.commit()
    assert (await env.admin.get(f"/v2/portals/{other.id}/developers/{dev.developer_id}")).status_code == 404


async def test_delete_removes_developer_and_applications(portal_env: PortalEnv):
    env = portal_env
    cat = await seed_catalog(env.runtime, env.portal_id)
    dev = await approved_developer(env.runtime, email="leaving@example.com")
    app_id = await seed_application(
        env.runtime, env.portal_id, dev.developer_id, cat.key_strategy_id, {cat.version_id: "approved"}
    )
    before = await config_version(env)
    url = f"/v2/portals/{env.portal_id}/developers/{dev.developer_id}"
    r = await env.admin.delete(url)
    assert r.status_code == 204
    assert (await env.admin.get(url)).status_code == 404
    assert (await env.client.get("/api/v2/developer/me", headers=dev.bearer)).status_code == 401
    async with env.runtime.sessions() as s:
        assert await s.get(Application, app_id) is None
        assert await s.get(Developer, dev.developer_id) is None
        assert (await s.execute(select(Registration).where(Registration.application_id == app_id))).first() is None
    assert await config_version(env) > before
    # the address is free again
    r = await env.client.post("/api/v2/developer", json={"email": "leaving@example.com", "full_name": "Back"})
    assert r.status_code == 201
    assert "Confirm your email" in env.mails()[-1]["Subject"]
    audit = await env.admin.get("/v2/audit-logs", params={"filter[action]": "developer.delete"})
    assert audit.json()["data"][0]["resource"]["id"] == str(dev.developer_id)


async def test_delete_with_an_application_still_deleting_keeps_the_row_until_it_goes(portal_env: PortalEnv):
    env = portal_env
    cat = await seed_catalog(env.runtime, env.portal_id)
    dev = await approved_developer(env.runtime, email="slow@example.com")
    app_id = await seed_application(env.runtime, env.portal_id, dev.developer_id, cat.key_strategy_id, {})
    async with env.runtime.sessions() as s:
        # as a DCR application waiting for its IdP client to be deleted (outbox)
        await s.execute(update(Application).where(Application.id == app_id).values(status="deleting"))
        await s.commit()
    url = f"/v2/portals/{env.portal_id}/developers/{dev.developer_id}"
    assert (await env.admin.delete(url)).status_code == 204
    assert (await env.admin.get(url)).status_code == 404
    async with env.runtime.sessions() as s:
        row = await s.get(Developer, dev.developer_id)
        assert row is not None and row.status == "deleted" and row.email != "slow@example.com"
        await s.delete(await s.get(Application, app_id))  # what the outbox does once the IdP agreed
        await s.commit()
    listed = await env.admin.get(f"/v2/portals/{env.portal_id}/developers")
    assert listed.json()["meta"]["page"]["total"] == 0
    async with env.runtime.sessions() as s:
        assert await s.get(Developer, dev.developer_id) is None


async def test_revoking_a_developer_tells_the_provider_of_each_removed_registration(portal_env: PortalEnv):
    """An http DCR bridge hears `remove_registration` (from the outbox) for the approved registration that the
    developer's revocation ended, as if an admin had revoked it."""
    env = portal_env
    cat = await seed_catalog(env.runtime, env.portal_id)
    r = await env.admin.post(
        "/v2/dcr-providers",
        json={
            "name": "bridge",
            "provider_type": "http",
            "issuer": "https://idp.example.com",
            "dcr_config": {"dcr_base_url": "https://bridge.example.com/dcr", "api_key": "bridge_api_key_123"},
        },
    )
    assert r.status_code == 201, r.text
    provider_id = uuid.UUID(r.json()["id"])
    async with env.runtime.sessions() as s:
        await s.execute(
            update(AuthStrategy).where(AuthStrategy.id == cat.strategy_id).values(dcr_provider_id=provider_id)
        )
        await s.commit()
    dev = await approved_developer(env.runtime)
    app_id = await seed_application(
        env.runtime,
        env.portal_id,
        dev.developer_id,
        cat.strategy_id,
        {cat.version_id: "approved", cat.bare_version_id: "pending"},
    )
    async with env.runtime.sessions() as s:
        await s.execute(
            update(Application).where(Application.id == app_id).values(dcr_provider_id=provider_id, reference_id="c-1")
        )
        await s.commit()
    r = await env.admin.patch(f"/v2/portals/{env.portal_id}/developers/{dev.developer_id}", json={"status": "revoked"})
    assert r.status_code == 200
    async with env.runtime.sessions() as s:
        ops = (await s.execute(select(IdpOperation).where(IdpOperation.application_id == app_id))).scalars().all()
    events = [(op.operation, op.payload["event_type"], op.payload["api_product_version_id"]) for op in ops]
    assert events == [("event", "remove_registration", str(cat.version_id))]  # the pending one was never added


async def test_delete_developer_deletes_dcr_clients_at_the_idp(portal_env: PortalEnv):
    """A DCR application of a deleted developer goes the way an application DELETE goes: IdP client deleted
    (here an http bridge behind a MockTransport that checks the exact request), then the rows."""
    env = portal_env
    seen: list[httpx.Request] = []

    def bridge(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        assert request.method == "DELETE"
        assert str(request.url) == "https://bridge.example.com/dcr/client-7"
        assert request.headers["X-API-KEY"] == "bridge_api_key_123"
        return httpx.Response(204)

    env.runtime.http = httpx.AsyncClient(transport=httpx.MockTransport(bridge))
    cat = await seed_catalog(env.runtime, env.portal_id)
    r = await env.admin.post(
        "/v2/dcr-providers",
        json={
            "name": "bridge",
            "provider_type": "http",
            "issuer": "https://idp.example.com",
            "dcr_config": {"dcr_base_url": "https://bridge.example.com/dcr", "api_key": "bridge_api_key_123"},
        },
    )
    provider_id = uuid.UUID(r.json()["id"])
    async with env.runtime.sessions() as s:
        await s.execute(
            update(AuthStrategy).where(AuthStrategy.id == cat.strategy_id).values(dcr_provider_id=provider_id)
        )
        await s.commit()
    dev = await approved_developer(env.runtime)
    app_id = await seed_application(
        env.runtime, env.portal_id, dev.developer_id, cat.strategy_id, {cat.version_id: "approved"}
    )
    async with env.runtime.sessions() as s:
        await s.execute(
            update(Application)
            .where(Application.id == app_id)
            .values(dcr_provider_id=provider_id, reference_id="client-7")
        )
        await s.commit()
    try:
        r = await env.admin.delete(f"/v2/portals/{env.portal_id}/developers/{dev.developer_id}")
    finally:
        await env.runtime.http.aclose()
    assert r.status_code == 204
    assert len(seen) == 1
    async with env.runtime.sessions() as s:
        assert await s.get(Application, app_id) is None
        assert await s.get(Developer, dev.developer_id) is None
