"""Credentials (portal-api.md §5): API keys of key_auth apps, zero-downtime secret rotation on Okta (two live
secrets, against the Okta fake built from Okta's documents), and the single-secret 409."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from keystile.services import outbox
from keystile.store.models import Credential
from tests.conftest import missing_service
from tests.integration.outbox.world import app_rows, make_world, operations
from tests.unit.dcr.fakes.okta import API_TOKEN, ISSUER, FakeOkta
from tests.unit.dcr.fakes.okta_spec import SPEC_DIR, load_okta_specs

from .test_applications import DCR_PROVIDER, KEY_AUTH, seed_app


async def key_app(api):
    world = await make_world(api.runtime, api.client, provider=None, strategy=KEY_AUTH)
    app = (await api.client.post("/api/v2/applications", json={"name": "keys"}, headers=world.as_dev())).json()
    return world, f"/api/v2/applications/{app['id']}/credentials"


async def test_api_key_is_shown_once_stored_hashed_and_expires_with_the_strategy_ttl(api):
    world, base = await key_app(api)
    r = await api.client.post(base, json={"display_name": "CI"}, headers=world.as_dev())
    assert r.status_code == 201, r.text
    body = r.json()
    assert re.fullmatch(r"kak_[A-Za-z0-9_-]{43}", body["credential"])
    assert body["type"] == "api_key"
    assert body["status"] == "active"
    assert body["display_name"] == "CI"
    assert r.headers["location"] == f"{base}/{body['id']}"
    assert r.headers["cache-control"] == "no-store"
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - (datetime.now(UTC) + timedelta(days=90))) < timedelta(minutes=1)
    async with api.runtime.sessions() as session:
        row = (await session.execute(select(Credential))).scalar_one()
    assert row.key_sha256 == hashlib.sha256(body["credential"].encode()).hexdigest()
    listed = await api.client.get(base, headers=world.as_dev())
    assert listed.status_code == 200
    assert body["credential"] not in listed.text
    assert listed.json()["data"] == [{k: v for k, v in body.items() if k != "credential"}]


async def test_at_most_20_keys_and_delete_revokes_but_keeps_listing(api):
    world, base = await key_app(api)
    h = world.as_dev()
    ids = []
    for _ in range(20):
        r = await api.client.post(base, headers=h)
        assert r.status_code == 201
        ids.append(r.json()["id"])
    over = await api.client.post(base, json={}, headers=h)
    assert over.status_code == 403
    assert over.json()["detail"] == "Maximum number of Credentials exceeded. Max Allowed: 20"
    gone = await api.client.delete(f"{base}/{ids[0]}", headers=h)
    assert gone.status_code == 204
    statuses = {c["id"]: c["status"] for c in (await api.client.get(base, headers=h)).json()["data"]}
    assert statuses[ids[0]] == "revoked"
    assert len(statuses) == 20
    assert (await api.client.post(base, headers=h)).status_code == 201  # a revoked key does not count
    renamed = await api.client.put(f"{base}/{ids[1]}", json={"display_name": "renamed"}, headers=h)
    assert renamed.status_code == 200
    assert renamed.content == b""
    assert (await api.client.put(f"{base}/{ids[1]}", json={}, headers=h)).status_code == 400
    assert (await api.client.delete(f"{base}/{uuid.uuid4()}", headers=h)).status_code == 404


async def test_idempotent_key_create_does_not_replay_the_key(api):
    world, base = await key_app(api)
    h = {**world.as_dev(), "Idempotency-Key": "key-create-1"}
    first = await api.client.post(base, json={"display_name": "CI"}, headers=h)
    again = await api.client.post(base, json={"display_name": "CI"}, headers=h)
    assert first.status_code == 201
    assert again.status_code == 409
    assert again.headers["location"] == f"{base}/{first.json()['id']}"
    assert "Its secret was shown once in that response and keystile does not keep it" in again.json()["detail"]
    assert len((await api.client.get(base, headers=world.as_dev())).json()["data"]) == 1


async def test_single_secret_provider_answers_409(api):
    world = await make_world(api.runtime, api.client, provider=DCR_PROVIDER)
    app_id = await seed_app(api.runtime, world)
    base = f"/api/v2/applications/{app_id}/credentials"
    detail = "this application's provider holds a single secret; use refresh-token"
    for method, path, body in [("GET", base, None), ("POST", base, {}), ("DELETE", f"{base}/ocs1", None)]:
        r = await api.client.request(method, path, json=body, headers=world.as_dev())
        assert r.status_code == 409
        assert r.json()["detail"] == detail


@pytest.fixture(scope="session")
def okta_validator():
    return load_okta_specs()


@pytest.fixture
async def okta(api, okta_validator):
    if okta_validator is None:
        missing_service(f"Okta's OpenAPI documents are not in {SPEC_DIR}")
    fake = FakeOkta(okta_validator, scopes=("orders:read",))
    original = api.runtime.http
    api.runtime.http = fake.client()
    yield fake
    await api.runtime.http.aclose()
    api.runtime.http = original
    fake.assert_clean()


async def test_zero_downtime_rotation_on_okta(api, okta):
    provider = {"name": "okta", "provider_type": "okta", "issuer": ISSUER, "dcr_config": {"dcr_token": API_TOKEN}}
    strategy = {
        "name": "okta strategy",
        "display_name": "Okta",
        "strategy_type": "openid_connect",
        "configs": {
            "openid-connect": {
                "issuer": ISSUER,
                "credential_claim": ["client_id"],
                "scopes": ["orders:read"],
                "auth_methods": ["client_credentials", "bearer"],
            }
        },
    }
    world = await make_world(api.runtime, api.client, provider=provider, strategy=strategy)
    h = world.as_dev()
    created = await api.client.post("/api/v2/applications", json={"name": "orders"}, headers=h)
    assert created.status_code == 201, created.text
    app = created.json()
    assert app["auth_strategy"]["supports_multiple_credentials"] is True
    assert app["auth_strategy"]["max_allowed_credentials"] == 2
    client_id, first_secret = app["credentials"]["client_id"], app["credentials"]["client_secret"]
    base = f"/api/v2/applications/{app['id']}/credentials"
    [old] = (await api.client.get(base, headers=h)).json()["data"]
    assert old["type"] == "client_secret"
    assert old["client_id"] == client_id
    assert old["id"].startswith("ocs")

    second = await api.client.post(base, json={"display_name": "next"}, headers=h)
    assert second.status_code == 201, second.text
    new_secret = second.json()["client_secret"]
    assert sorted(okta.active_secrets(client_id)) == sorted([first_secret, new_secret])
    third = await api.client.post(base, json={}, headers=h)
    assert third.status_code == 403
    assert third.json()["detail"] == "Maximum number of Credentials exceeded. Max Allowed: 2"
    refresh = await api.client.post(f"/api/v2/applications/{app['id']}/refresh-token", headers=h)
    assert refresh.status_code == 409  # two live secrets: rotate with the credentials endpoints

    revoked = await api.client.delete(f"{base}/{old['id']}", headers=h)
    assert revoked.status_code == 204, revoked.text
    assert okta.active_secrets(client_id) == [new_secret]
    [left] = (await api.client.get(base, headers=h)).json()["data"]
    assert left["id"] == second.json()["id"]
    last = await api.client.delete(f"{base}/{left['id']}", headers=h)
    assert last.status_code == 409
    assert last.json()["detail"] == "an application keeps at least one secret; use refresh-token to replace it"
    assert okta.active_secrets(client_id) == [new_secret]


async def test_a_register_timeout_after_okta_made_the_client_is_swept_by_its_tag(api, okta):
    provider = {"name": "okta", "provider_type": "okta", "issuer": ISSUER, "dcr_config": {"dcr_token": API_TOKEN}}
    strategy = {
        "name": "okta strategy",
        "display_name": "Okta",
        "strategy_type": "openid_connect",
        "configs": {
            "openid-connect": {
                "issuer": ISSUER,
                "credential_claim": ["client_id"],
                "scopes": ["orders:read"],
                "auth_methods": ["client_credentials"],
            }
        },
    }
    world = await make_world(api.runtime, api.client, provider=provider, strategy=strategy)
    unrelated = okta.add_client("someone else's app")
    okta.inject("POST", "/oauth2/v1/clients", "read_timeout", after_effect=True)
    r = await api.client.post("/api/v2/applications", json={"name": "orders"}, headers=world.as_dev())
    assert r.status_code == 504
    assert await app_rows(api.runtime) == []
    assert len(okta.clients) == 2  # the IdP made the client although keystile never heard back
    [op] = await operations(api.runtime)
    assert op.operation == "sweep"
    assert await outbox.run_due(api.runtime) == 1
    assert list(okta.clients) == [unrelated["client_id"]]  # only the client tagged with the application went
    assert await operations(api.runtime) == []
