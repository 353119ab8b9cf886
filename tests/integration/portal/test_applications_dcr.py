"""Applications with DCR against the real oidc-provider peer (dcr-providers.md §3, portal-api.md §4):
the secret works at the IdP, refresh-token kills the old one, delete removes the client; a crash between the
IdP call and the commit is settled by the start-up sweep; an IdP down during delete is retried exactly once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from keystile.services import applications, outbox
from keystile.services.context import Actor
from keystile.store.models import Application, IdpOperation, Portal
from tests.integration.outbox.world import app_rows, make_world, operations, peer_provider

pytestmark = pytest.mark.node


async def token(issuer: str, client_id: str, secret: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{issuer}/token", data={"grant_type": "client_credentials", "scope": "read"}, auth=(client_id, secret)
        )


async def test_create_register_approve_refresh_delete_against_the_peer(api, oidc_peer):
    world = await make_world(api.runtime, api.client, provider=peer_provider(oidc_peer))
    r = await api.client.post(
        "/api/v2/applications", json={"name": "billing-sync", "description": "sync"}, headers=world.as_dev()
    )
    assert r.status_code == 201, r.text
    app = r.json()
    assert app["status"] == "active"
    assert r.headers["location"] == f"/api/v2/applications/{app['id']}"
    creds = app["credentials"]
    assert app["reference_id"] == creds["client_id"]
    assert app["auth_strategy"]["credential_type"] == "client_credentials"
    assert app["auth_strategy"]["name"] == "Peer"
    first = await token(oidc_peer.issuer, creds["client_id"], creds["client_secret"])
    assert first.status_code == 200, first.text

    got = await api.client.get(f"/api/v2/applications/{app['id']}", headers=world.as_dev())
    assert got.status_code == 200
    assert "credentials" not in got.json()
    assert creds["client_secret"] not in got.text

    reg = await api.client.post(
        f"/api/v2/applications/{app['id']}/registrations",
        json={"product_version_id": str(world.version_id)},
        headers=world.as_dev(),
    )
    assert reg.status_code == 201, reg.text
    assert reg.json()["status"] == "pending"
    approved = await api.client.patch(
        f"/v2/portals/{world.portal_id}/application-registrations/{reg.json()['id']}", json={"status": "approved"}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["application"] == {"id": app["id"], "name": "billing-sync"}

    refreshed = await api.client.post(f"/api/v2/applications/{app['id']}/refresh-token", headers=world.as_dev())
    assert refreshed.status_code == 201, refreshed.text
    new = refreshed.json()
    assert set(new) == {"client_id", "client_secret"}
    assert new["client_id"] == creds["client_id"]
    assert new["client_secret"] != creds["client_secret"]
    old_refused = await token(oidc_peer.issuer, creds["client_id"], creds["client_secret"])
    assert old_refused.status_code == 401
    assert (await token(oidc_peer.issuer, new["client_id"], new["client_secret"])).status_code == 200
    rows = await app_rows(api.runtime)
    assert rows[0].credentials_not_before is not None

    gone = await api.client.delete(f"/api/v2/applications/{app['id']}", headers=world.as_dev())
    assert gone.status_code == 204
    refused = await token(oidc_peer.issuer, new["client_id"], new["client_secret"])
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert (await api.client.get(f"/api/v2/applications/{app['id']}", headers=world.as_dev())).status_code == 404
    assert await app_rows(api.runtime) == []
    assert await operations(api.runtime) == []


class ProcessKilledError(BaseException):
    """Stands for the process dying: no `except Exception` compensation runs."""


async def test_a_crash_between_the_idp_call_and_the_commit_is_settled_at_the_next_start(api, oidc_peer, monkeypatch):
    world = await make_world(api.runtime, api.client, provider=peer_provider(oidc_peer))

    async def die(ctx):
        raise ProcessKilledError

    monkeypatch.setattr(applications.installation, "bump_config_version", die)
    actor = Actor("developer", str(world.dev.developer_id), "Jane Dev")
    with pytest.raises(ProcessKilledError):
        async with api.runtime.unit(actor) as ctx:
            await applications.create(ctx, {"name": "doomed"})
    monkeypatch.undo()

    [row] = await app_rows(api.runtime)
    assert row.status == "provisioning"
    assert row.reference_id  # the IdP answered: its client exists
    async with api.runtime.unit(actor) as ctx:
        ref = applications.client_ref(ctx, row)
    uri = ref.secret_handles["registration_client_uri"].get_secret_value()
    rat = ref.secret_handles["registration_access_token"].get_secret_value()
    async with httpx.AsyncClient() as http:
        assert (await http.get(uri, headers={"Authorization": f"Bearer {rat}"})).status_code == 200

    # A create in flight is never touched; five minutes later it is a crash's leftover.
    assert await outbox.sweep_provisioning(api.runtime) == 0
    async with api.runtime.sessions() as session:
        await session.execute(
            update(Application)
            .values(created_at=datetime.now(UTC) - timedelta(minutes=6))
            .where(Application.id == row.id)
        )
        await session.commit()
    assert await outbox.sweep_provisioning(api.runtime) == 1
    assert await app_rows(api.runtime) == []
    assert await outbox.run_due(api.runtime) == 1
    assert await operations(api.runtime) == []
    async with httpx.AsyncClient() as http:
        after = await http.get(uri, headers={"Authorization": f"Bearer {rat}"})
    assert after.status_code == 401  # the client and its registration access token are gone


class Switch(httpx.AsyncBaseTransport):
    """The real network, except that DELETEs fail to connect while `down`; counts DELETEs that got through."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.down = False
        self.deletes_sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            if self.down:
                raise httpx.ConnectError("connection refused", request=request)
            self.deletes_sent += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _make_due(runtime):
    async with runtime.sessions() as session:
        await session.execute(update(IdpOperation).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
        await session.commit()


async def test_idp_down_during_delete_is_retried_until_it_happens_exactly_once(api, oidc_peer):
    switch = Switch()
    original = api.runtime.http
    api.runtime.http = httpx.AsyncClient(transport=switch, timeout=5.0)
    try:
        world = await make_world(api.runtime, api.client, provider=peer_provider(oidc_peer))
        r = await api.client.post("/api/v2/applications", json={"name": "flaky"}, headers=world.as_dev())
        assert r.status_code == 201, r.text
        app, creds = r.json(), r.json()["credentials"]

        switch.down = True
        gone = await api.client.delete(f"/api/v2/applications/{app['id']}", headers=world.as_dev())
        assert gone.status_code == 204
        assert (await api.client.get(f"/api/v2/applications/{app['id']}", headers=world.as_dev())).status_code == 404
        listed = await api.client.get("/api/v2/applications", headers=world.as_dev())
        assert listed.json()["data"] == []
        admin = await api.client.get(f"/v2/applications/{app['id']}")
        assert admin.json()["status"] == "deleting"
        [op] = (await api.client.get("/v2/idp-operations")).json()["data"]
        assert op["operation"] == "deregister"
        assert op["status"] == "pending"
        assert op["client_id"] == creds["client_id"]
        assert op["attempts"] == 1
        assert "connect" in op["last_error"].lower()
        assert (await token(oidc_peer.issuer, creds["client_id"], creds["client_secret"])).status_code == 200

        await _make_due(api.runtime)
        assert await outbox.run_due(api.runtime) == 1
        [op] = await operations(api.runtime)
        assert op.attempts == 2
        assert op.status == "pending"
        assert switch.deletes_sent == 0

        switch.down = False
        await _make_due(api.runtime)
        assert await outbox.run_due(api.runtime) == 1
        assert switch.deletes_sent == 1
        assert await operations(api.runtime) == []
        assert await app_rows(api.runtime) == []
        await _make_due(api.runtime)
        assert await outbox.run_due(api.runtime) == 0
        assert switch.deletes_sent == 1
        assert (await token(oidc_peer.issuer, creds["client_id"], creds["client_secret"])).status_code == 401
        assert (await api.client.get(f"/v2/applications/{app['id']}")).status_code == 404
    finally:
        await api.runtime.http.aclose()
        api.runtime.http = original


async def test_update_of_redirect_uri_rotates_the_secret_in_the_request(api, oidc_peer):
    world = await make_world(api.runtime, api.client, provider=peer_provider(oidc_peer))
    r = await api.client.post("/api/v2/applications", json={"name": "web"}, headers=world.as_dev())
    creds = r.json()["credentials"]
    patched = await api.client.patch(
        f"/api/v2/applications/{r.json()['id']}",
        json={"redirect_uri": "https://app.example.com/cb", "description": "web app"},
        headers=world.as_dev(),
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["redirect_uri"] == "https://app.example.com/cb"
    assert body["description"] == "web app"
    new = body["credentials"]
    assert new["client_id"] == creds["client_id"]
    assert (await token(oidc_peer.issuer, new["client_id"], new["client_secret"])).status_code == 200
    assert (await token(oidc_peer.issuer, creds["client_id"], creds["client_secret"])).status_code == 401
    again = await api.client.get(f"/api/v2/applications/{r.json()['id']}", headers=world.as_dev())
    assert "credentials" not in again.json()


async def test_idempotent_create_does_not_replay_the_secret(api, oidc_peer):
    world = await make_world(api.runtime, api.client, provider=peer_provider(oidc_peer))
    key = {"Idempotency-Key": f"create-{uuid.uuid4()}"}
    first = await api.client.post("/api/v2/applications", json={"name": "once"}, headers={**world.as_dev(), **key})
    assert first.status_code == 201
    app_id = first.json()["id"]
    again = await api.client.post("/api/v2/applications", json={"name": "once"}, headers={**world.as_dev(), **key})
    assert again.status_code == 409
    assert again.headers["location"] == f"/api/v2/applications/{app_id}"
    assert again.json()["detail"] == (
        f"This request already succeeded (application {app_id}). Its secret was shown once in that response and "
        f"keystile does not keep it; rotate it with POST /api/v2/applications/{app_id}/refresh-token."
    )
    assert len(await app_rows(api.runtime)) == 1
    other_body = await api.client.post(
        "/api/v2/applications", json={"name": "twice"}, headers={**world.as_dev(), **key}
    )
    assert other_body.status_code == 422


async def test_the_whole_developer_journey_over_http_with_a_cookie_session(portal_env, oidc_peer):
    env = portal_env
    world = await make_world(env.runtime, env.admin, provider=peer_provider(oidc_peer))
    async with env.runtime.sessions() as session:
        await session.execute(update(Portal).where(Portal.id == env.portal_id).values(auto_approve_developers=True))
        await session.commit()
    email, password = "journey@example.com", "correct horse battery staple"
    assert (
        await env.client.post("/api/v2/developer", json={"email": email, "full_name": "Jo Urney"})
    ).status_code == 201
    verified = await env.client.post("/api/v2/developer/verify-email", json={"token": env.last_token(email)})
    assert verified.status_code == 202
    reset = await env.client.post(
        "/api/v2/developer/reset-password", json={"token": verified.json()["token"], "password": password}
    )
    assert reset.status_code == 204
    login = await env.client.post("/api/v2/developer/authenticate", json={"username": email, "password": password})
    assert login.status_code == 204
    assert env.client.cookies.get("portalaccesstoken")
    csrf = {"X-Requested-With": "XMLHttpRequest"}

    refused = await env.client.post("/api/v2/applications", json={"name": "journey"})
    assert refused.status_code == 403  # a cookie-authenticated write without the CSRF header
    assert refused.json()["detail"].startswith("CSRF check failed")
    created = await env.client.post("/api/v2/applications", json={"name": "journey"}, headers=csrf)
    assert created.status_code == 201, created.text
    app, creds = created.json(), created.json()["credentials"]
    assert (await token(oidc_peer.issuer, creds["client_id"], creds["client_secret"])).status_code == 200

    reg = await env.client.post(
        f"/api/v2/applications/{app['id']}/registrations",
        json={"product_version_id": str(world.version_id)},
        headers=csrf,
    )
    assert reg.json()["status"] == "pending"
    decided = await env.admin.patch(
        f"/v2/portals/{world.portal_id}/applications/{app['id']}/registrations/{reg.json()['id']}",
        json={"status": "approved"},
    )
    assert decided.json()["status"] == "approved"
    mine = await env.client.get(f"/api/v2/applications/{app['id']}/registrations/{reg.json()['id']}")
    assert mine.json()["status"] == "approved"

    rotated = await env.client.post(f"/api/v2/applications/{app['id']}/refresh-token", headers=csrf)
    assert rotated.status_code == 201
    assert (await token(oidc_peer.issuer, creds["client_id"], creds["client_secret"])).status_code == 401
    new = rotated.json()
    assert (await token(oidc_peer.issuer, new["client_id"], new["client_secret"])).status_code == 200
    assert (await env.client.delete(f"/api/v2/applications/{app['id']}", headers=csrf)).status_code == 204
    assert (await token(oidc_peer.issuer, new["client_id"], new["client_secret"])).status_code == 401
    assert (await env.client.get("/api/v2/applications")).json()["data"] == []
