"""`Idempotency-Key` (management-api.md §1.5) on the Portal API's creating POSTs: replay of the first answer,
422 for another body, 409 while the first runs, 4xx kept, 5xx not kept, keys scoped per caller."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from keystile.services import idempotency
from keystile.store.models import IdempotencyKey
from tests.integration.outbox.world import app_rows, make_world

KEY_AUTH = {
    "name": "keys",
    "display_name": "API key",
    "strategy_type": "key_auth",
    "configs": {"key-auth": {"key_names": ["apikey"]}},
}


async def test_same_key_same_body_replays_without_running_again(api):
    world = await make_world(api.runtime, api.client, provider=None, strategy=KEY_AUTH)
    h = {**world.as_dev(), "Idempotency-Key": "k-1"}
    first = await api.client.post("/api/v2/applications", json={"name": "a", "description": "x"}, headers=h)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    again = await api.client.post(
        "/api/v2/applications",
        content=b'{"description": "x",   "name": "a"}',
        headers={**h, "Content-Type": "application/json"},
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert len(await app_rows(api.runtime)) == 1

    other = await api.client.post("/api/v2/applications", json={"name": "b"}, headers=h)
    assert other.status_code == 422
    assert len(await app_rows(api.runtime)) == 1

    # the key belongs to this developer only: another one may use it
    theirs = await api.client.post(
        "/api/v2/applications", json={"name": "a"}, headers={**world.as_dev(world.other), "Idempotency-Key": "k-1"}
    )
    assert theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers


async def test_a_4xx_answer_is_kept_and_replayed(api):
    world = await make_world(api.runtime, api.client, provider=None, strategy=KEY_AUTH)
    h = {**world.as_dev(), "Idempotency-Key": "k-bad"}
    first = await api.client.post("/api/v2/applications", json={"name": ""}, headers=h)
    assert first.status_code == 400
    again = await api.client.post("/api/v2/applications", json={"name": ""}, headers=h)
    assert again.status_code == 400
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["invalid_parameters"] == first.json()["invalid_parameters"]


async def test_in_progress_and_malformed_keys(api):
    world = await make_world(api.runtime, api.client, provider=None, strategy=KEY_AUTH)
    async with api.runtime.sessions() as session:
        session.add(
            IdempotencyKey(
                scope=f"developer:{world.dev.developer_id}",
                method="POST",
                path="/api/v2/applications",
                key="k-busy",
                request_sha256=idempotency.body_hash({"name": "a"}),
                state="in_progress",
                created_at=datetime.now(UTC),
            )
        )
        await session.commit()
    busy = await api.client.post(
        "/api/v2/applications", json={"name": "a"}, headers={**world.as_dev(), "Idempotency-Key": "k-busy"}
    )
    assert busy.status_code == 409
    assert busy.json()["detail"] == "a request with this Idempotency-Key is in progress"
    bad = await api.client.post(
        "/api/v2/applications", json={"name": "a"}, headers={**world.as_dev(), "Idempotency-Key": "has space"}
    )
    assert bad.status_code == 400
    assert bad.json()["invalid_parameters"][0]["source"] == "header"
    assert await app_rows(api.runtime) == []


async def test_a_5xx_is_not_kept(api):
    world = await make_world(api.runtime, api.client, provider=None, strategy=KEY_AUTH)
    claim = await idempotency.begin(
        api.runtime, scope="developer:x", method="POST", path="/api/v2/applications", key="k-5", body={"a": 1}
    )
    assert isinstance(claim, idempotency.Claim)
    await idempotency.finish(api.runtime, claim, status=502, body={"status": 502})
    again = await idempotency.begin(
        api.runtime, scope="developer:x", method="POST", path="/api/v2/applications", key="k-5", body={"a": 1}
    )
    assert isinstance(again, idempotency.Claim)  # runs again
    assert world.dev.developer_id  # the world exists; the key table is what is under test


async def test_keys_older_than_24_hours_are_purged(api):
    async with api.runtime.sessions() as session:
        for key, age in (("old", timedelta(hours=25)), ("new", timedelta(hours=1))):
            session.add(
                IdempotencyKey(
                    scope="developer:x",
                    method="POST",
                    path="/api/v2/applications",
                    key=key,
                    request_sha256="0" * 64,
                    state="done",
                    created_at=datetime.now(UTC) - age,
                )
            )
        await session.commit()
    assert await idempotency.purge_expired(api.runtime) == 1
    async with api.runtime.sessions() as session:
        left = (await session.execute(select(IdempotencyKey.key))).scalars().all()
    assert left == ["new"]
