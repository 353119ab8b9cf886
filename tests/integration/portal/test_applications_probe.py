"""A new secret the IdP does not accept at once (Entra: `needs_probe`) is probed before the 201 (dcr-providers.md
§3.2): accepted in time → credential `active`; not within the budget → the secret is still shown once, the
credential is `pending`, and the outbox keeps probing until it is accepted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from keystile.services import applications, outbox
from keystile.store.models import Credential, IdpOperation
from tests.integration.outbox.world import make_world, operations
from tests.unit.dcr.fakes.entra import ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET, API_SCOPE, ISSUER, FakeEntra

PROVIDER = {
    "name": "entra",
    "provider_type": "azureAd",
    "issuer": ISSUER,
    "dcr_config": {"initial_client_id": ADMIN_CLIENT_ID, "initial_client_secret": ADMIN_CLIENT_SECRET},
}
STRATEGY = {
    "name": "entra strategy",
    "display_name": "Entra",
    "strategy_type": "openid_connect",
    "configs": {
        "openid-connect": {
            "issuer": ISSUER,
            "credential_claim": ["azp"],
            "scopes": [API_SCOPE],
            "auth_methods": ["client_credentials"],
        }
    },
}


@pytest.fixture
async def entra(api, monkeypatch):
    monkeypatch.setattr(applications, "PROBE_DELAYS", (0.01, 0.01, 0.01))
    fake = FakeEntra()
    original = api.runtime.http
    api.runtime.http = fake.client()
    yield fake
    await api.runtime.http.aclose()
    api.runtime.http = original


async def credential_status(runtime) -> list[str]:
    async with runtime.sessions() as session:
        return [c.status for c in (await session.execute(select(Credential))).scalars()]


async def test_a_secret_accepted_within_the_budget_is_active(api, entra):
    world = await make_world(api.runtime, api.client, provider=PROVIDER, strategy=STRATEGY)
    entra.propagation_refusals = 2
    r = await api.client.post("/api/v2/applications", json={"name": "orders"}, headers=world.as_dev())
    assert r.status_code == 201, r.text
    assert r.json()["credentials"]["client_secret"]
    assert await credential_status(api.runtime) == ["active"]
    assert await operations(api.runtime) == []


async def test_a_secret_not_yet_accepted_is_shown_once_and_probed_from_the_outbox(api, entra):
    world = await make_world(api.runtime, api.client, provider=PROVIDER, strategy=STRATEGY)
    entra.propagation_refusals = None
    r = await api.client.post("/api/v2/applications", json={"name": "orders"}, headers=world.as_dev())
    assert r.status_code == 201, r.text
    secret = r.json()["credentials"]["client_secret"]
    assert await credential_status(api.runtime) == ["pending"]
    [op] = await operations(api.runtime)
    assert op.operation == "probe"
    assert secret not in str(op.secrets)  # kept encrypted for the five minutes of probing
    async with api.runtime.sessions() as session:
        await session.execute(update(IdpOperation).values(next_attempt_at=datetime.now(UTC)))
        await session.commit()
    assert await outbox.run_due(api.runtime) == 1  # still refused: the entry stays
    assert await credential_status(api.runtime) == ["pending"]
    entra._refusals.clear()  # the tenant has finished propagating the secret
    async with api.runtime.sessions() as session:
        await session.execute(update(IdpOperation).values(next_attempt_at=datetime.now(UTC)))
        await session.commit()
    assert await outbox.run_due(api.runtime) == 1
    assert await credential_status(api.runtime) == ["active"]
    assert await operations(api.runtime) == []
    listed = await api.client.get(f"/api/v2/applications/{r.json()['id']}/credentials", headers=world.as_dev())
    assert listed.status_code == 200
    assert len(listed.json()["data"]) == 1
