"""A DCR create that fails leaves nothing behind (dcr-providers.md §3.1): an IdP refusal → 502 naming the IdP's
message, a timeout → 504, both without a row or a client; a failure after the IdP answered deletes its client at
once, or queues the delete when the IdP cannot take it."""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest

from keystile.dcr.naming import tag
from keystile.services import applications, outbox
from keystile.services.context import Actor
from tests.integration.outbox.world import app_rows, make_world, operations

ISSUER = "https://idp.test"
IAT = "iat-secret-0123456789"
PROVIDER = {
    "name": "fake rfc7591",
    "provider_type": "rfc7591",
    "issuer": ISSUER,
    "dcr_config": {"registration_endpoint": f"{ISSUER}/reg", "initial_access_token": IAT},
}


class FakeIdp:
    """An RFC 7591/7592 server in a MockTransport: asserts the exact registration request; switchable answers."""

    def __init__(self, register: str = "ok", delete_status: int = 204) -> None:
        self.register = register
        self.put = "503"  # or "no_secret": the PUT is carried out and answers a new RAT but no client_secret
        self.delete_status = delete_status
        self.requests: list[httpx.Request] = []
        self.clients: dict[str, dict[str, str]] = {}
        self.puts = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "POST" and request.url == f"{ISSUER}/reg":
            assert request.headers["authorization"] == f"Bearer {IAT}"
            assert request.headers["content-type"] == "application/json"
            body = json.loads(request.content)
            name = body.pop("client_name")
            assert re.fullmatch(r".+ \(ks-[0-9a-f]{12}\)", name)
            assert body == {
                "grant_types": ["client_credentials"],
                "response_types": [],
                "token_endpoint_auth_method": "client_secret_basic",
                "scope": "read",
            }
            if self.register == "refuse":
                return httpx.Response(
                    400, json={"error": "invalid_client_metadata", "error_description": "scope read is not allowed"}
                )
            if self.register == "500":
                return httpx.Response(
                    500, json={"error": "server_error", "error_description": "the registration store is unavailable"}
                )
            if self.register == "timeout":
                raise httpx.ReadTimeout("read timed out", request=request)
            client_id = f"c-{uuid.uuid4().hex[:8]}"
            self.clients[client_id] = {"rat": f"rat-{client_id}"}
            return httpx.Response(
                201,
                json={
                    "client_id": client_id,
                    "client_secret": f"secret-{client_id}",
                    "client_name": name,
                    "registration_access_token": f"rat-{client_id}",
                    "registration_client_uri": f"{ISSUER}/reg/{client_id}",
                    **body,
                },
            )
        if request.method == "PUT" and request.url.path.startswith("/reg/"):
            self.puts += 1
            client_id = request.url.path.rsplit("/", 1)[1]
            if self.put == "no_secret":
                assert request.headers["authorization"] == f"Bearer {self.clients[client_id]['rat']}"
                self.clients[client_id]["rat"] = f"rat{self.puts}-{client_id}"
                body = json.loads(request.content)
                return httpx.Response(
                    200,
                    json={
                        **body,
                        "registration_access_token": self.clients[client_id]["rat"],
                        "registration_client_uri": f"{ISSUER}/reg/{client_id}",
                    },
                )
            return httpx.Response(503, json={"error": "temporarily_unavailable", "error_description": "maintenance"})
        if request.method == "DELETE" and request.url.path.startswith("/reg/"):
            client_id = request.url.path.rsplit("/", 1)[1]
            rat = self.clients.get(client_id, {}).get("rat", f"rat-{client_id}")
            assert request.headers["authorization"] == f"Bearer {rat}"
            if self.delete_status == 204:
                self.clients.pop(client_id, None)
            return httpx.Response(self.delete_status)
        raise AssertionError(f"unexpected request {request.method} {request.url}")


@pytest.fixture
async def fake_idp(api):
    fake = FakeIdp()
    original = api.runtime.http
    api.runtime.http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
    yield fake
    await api.runtime.http.aclose()
    api.runtime.http = original


async def test_idp_error_is_a_502_naming_its_message_and_leaves_no_row(api, fake_idp):
    world = await make_world(api.runtime, api.client, provider=PROVIDER)
    fake_idp.register = "refuse"
    r = await api.client.post("/api/v2/applications", json={"name": "billing"}, headers=world.as_dev())
    assert r.status_code == 502
    assert r.headers["content-type"] == "application/problem+json"
    assert "invalid_client_metadata" in r.json()["detail"]
    assert "scope read is not allowed" in r.json()["detail"]
    assert await app_rows(api.runtime) == []
    assert await operations(api.runtime) == []  # a refusal is a known outcome: nothing to sweep
    assert fake_idp.clients == {}


async def test_idp_500_is_a_502_and_the_unknown_outcome_is_swept(api, fake_idp):
    world = await make_world(api.runtime, api.client, provider=PROVIDER)
    fake_idp.register = "500"
    r = await api.client.post("/api/v2/applications", json={"name": "billing"}, headers=world.as_dev())
    assert r.status_code == 502
    assert "the registration store is unavailable" in r.json()["detail"]
    assert await app_rows(api.runtime) == []
    assert fake_idp.clients == {}
    assert len([q for q in fake_idp.requests if q.method == "POST"]) == 1  # a registration is never repeated
    [op] = await operations(api.runtime)
    assert op.operation == "sweep"
    # this IdP cannot list its clients: the sweep becomes a "possible orphan" an admin sees
    assert await outbox.run_due(api.runtime) == 1
    listed = (await api.client.get("/v2/idp-operations")).json()["data"]
    assert listed[0]["status"] == "stuck"
    assert tag(listed[0]["application_id"]) in listed[0]["last_error"]


async def test_idp_timeout_is_a_504_and_leaves_no_row(api, fake_idp):
    world = await make_world(api.runtime, api.client, provider=PROVIDER)
    fake_idp.register = "timeout"
    r = await api.client.post("/api/v2/applications", json={"name": "billing"}, headers=world.as_dev())
    assert r.status_code == 504
    assert "timeout" in r.json()["detail"]
    assert await app_rows(api.runtime) == []
    assert fake_idp.clients == {}
    [op] = await operations(api.runtime)
    assert (op.operation, op.status) == ("sweep", "pending")


async def test_a_failure_after_the_idp_answered_deletes_its_client_at_once(api, fake_idp, monkeypatch):
    world = await make_world(api.runtime, api.client, provider=PROVIDER)

    async def broken(ctx):
        raise RuntimeError("database went away")

    monkeypatch.setattr(applications.installation, "bump_config_version", broken)
    actor = Actor("developer", str(world.dev.developer_id), "Jane Dev")
    with pytest.raises(RuntimeError):
        async with api.runtime.unit(actor) as ctx:
            await applications.create(ctx, {"name": "billing"})
    assert [q.method for q in fake_idp.requests] == ["POST", "DELETE"]
    assert fake_idp.clients == {}
    assert await app_rows(api.runtime) == []
    assert await operations(api.runtime) == []


async def test_a_failure_after_the_idp_answered_queues_the_delete_when_the_idp_fails_too(api, fake_idp, monkeypatch):
    world = await make_world(api.runtime, api.client, provider=PROVIDER)
    fake_idp.delete_status = 503

    async def broken(ctx):
        raise RuntimeError("database went away")

    monkeypatch.setattr(applications.installation, "bump_config_version", broken)
    actor = Actor("developer", str(world.dev.developer_id), "Jane Dev")
    with pytest.raises(RuntimeError):
        async with api.runtime.unit(actor) as ctx:
            await applications.create(ctx, {"name": "billing"})
    monkeypatch.undo()
    assert await app_rows(api.runtime) == []
    [op] = await operations(api.runtime)
    [client_id] = fake_idp.clients
    assert (op.operation, op.client_id, op.status) == ("deregister", client_id, "pending")
    assert f"rat-{client_id}" not in json.dumps(op.secrets)  # the handles are stored encrypted
    fake_idp.delete_status = 204
    assert await outbox.run_one(api.runtime, op.id) == "done"
    assert fake_idp.clients == {}
    assert await operations(api.runtime) == []


async def test_rotations_that_fail_at_the_idp_change_nothing(api, fake_idp):
    rotating = {**PROVIDER, "dcr_config": {**PROVIDER["dcr_config"], "rotates_secret_on_put": True}}
    world = await make_world(api.runtime, api.client, provider=rotating)
    created = await api.client.post("/api/v2/applications", json={"name": "billing"}, headers=world.as_dev())
    assert created.status_code == 201
    app_id = created.json()["id"]
    patched = await api.client.patch(
        f"/api/v2/applications/{app_id}", json={"redirect_uri": "https://app.example.com/cb"}, headers=world.as_dev()
    )
    assert patched.status_code == 502
    assert "maintenance" in patched.json()["detail"]
    refreshed = await api.client.post(f"/api/v2/applications/{app_id}/refresh-token", headers=world.as_dev())
    assert refreshed.status_code == 502
    assert fake_idp.puts == 2
    [row] = await app_rows(api.runtime)
    assert row.redirect_uri is None
    assert row.credentials_not_before is None
    assert row.status == "active"


async def test_a_rotating_patch_whose_put_landed_without_a_secret_keeps_the_change_and_the_new_token(api, fake_idp):
    """The server was configured to rotate on PUT but answered without a secret: the PUT was carried out (new
    redirect URI and registration access token at the IdP), so the PATCH is kept with the new token, without
    `credentials`; the delete later uses that token."""
    provider = {**PROVIDER, "dcr_config": {**PROVIDER["dcr_config"], "rotates_secret_on_put": True}}
    world = await make_world(api.runtime, api.client, provider=provider)
    created = await api.client.post("/api/v2/applications", json={"name": "billing"}, headers=world.as_dev())
    assert created.status_code == 201, created.text
    app_id = created.json()["id"]
    fake_idp.put = "no_secret"
    patched = await api.client.patch(
        f"/api/v2/applications/{app_id}",
        json={"name": "billing web", "redirect_uri": "https://app.example.com/cb"},
        headers=world.as_dev(),
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["redirect_uri"]) == ("billing web", "https://app.example.com/cb")
    assert "credentials" not in body
    deleted = await api.client.delete(f"/api/v2/applications/{app_id}", headers=world.as_dev())
    assert deleted.status_code == 204
    assert fake_idp.clients == {}  # the DELETE carried the RAT the PUT issued (the fake checks it)
    assert await operations(api.runtime) == []
