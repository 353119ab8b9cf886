"""The outbox (dcr-providers.md §1.4, §3.2; management-api.md §7): backoff 10 s doubling to 15 min with jitter,
`stuck` after 24 h or on an error no retry fixes, admin retry (202) and give-up (204, audited as a known orphan),
the start-up sweep and the runner that performs it."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from keystile.dcr.types import ClientRef
from keystile.services import outbox
from keystile.services.context import SYSTEM
from keystile.store.models import Application, AuditEvent, IdpOperation
from tests.integration.outbox.world import app_rows, make_world, operations

ISSUER = "https://idp.test"
PROVIDER = {
    "name": "fake rfc7591",
    "provider_type": "rfc7591",
    "issuer": ISSUER,
    "dcr_config": {"registration_endpoint": f"{ISSUER}/reg", "initial_access_token": "iat-0123456789"},
}


def test_backoff_doubles_from_10_seconds_to_15_minutes_with_jitter():
    low = [outbox.backoff(n, uniform=lambda a, b: a) for n in range(1, 12)]
    high = [outbox.backoff(n, uniform=lambda a, b: b) for n in range(1, 12)]
    mid = [outbox.backoff(n, uniform=lambda a, b: 1.0) for n in range(1, 12)]
    assert mid[:8] == [10, 20, 40, 80, 160, 320, 640, 900]
    assert mid[8:] == [900, 900, 900]
    assert low[0] == 7.5
    assert high[0] == 12.5
    assert max(high) == 900


class Idp:
    """DELETE on a registration client URI with a switchable answer; counts the DELETEs."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.deletes = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "DELETE"
        assert request.url == f"{ISSUER}/reg/c1"
        assert request.headers["authorization"] == "Bearer rat-c1"
        self.deletes += 1
        if self.status >= 400:
            return httpx.Response(self.status, json={"error": "server_error", "error_description": "try later"})
        return httpx.Response(self.status)


@pytest.fixture
async def idp(api):
    fake = Idp()
    original = api.runtime.http
    api.runtime.http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
    yield fake
    await api.runtime.http.aclose()
    api.runtime.http = original


async def queue_deregister(api, world, app_id=None):
    ref = ClientRef(
        client_id="c1",
        application_id=app_id or uuid.uuid4(),
        secret_handles={
            "registration_access_token": SecretStr("rat-c1"),
            "registration_client_uri": SecretStr(f"{ISSUER}/reg/c1"),
        },
    )
    async with api.runtime.unit(SYSTEM) as ctx:
        row = outbox.enqueue_deregister(ctx, uuid.UUID(world.provider_id), ref, finalize_application=app_id is not None)
        await ctx.session.commit()
        return row.id


async def set_op(runtime, op_id, **values):
    async with runtime.sessions() as session:
        await session.execute(update(IdpOperation).where(IdpOperation.id == op_id).values(**values))
        await session.commit()


async def test_secrets_are_encrypted_and_failures_back_off_then_stick_after_24_hours(api, idp):
    world = await make_world(api.runtime, api.client, provider=PROVIDER)
    op_id = await queue_deregister(api, world)
    [row] = await operations(api.runtime)
    assert "rat-c1" not in json.dumps(row.secrets) + json.dumps(row.payload)
    idp.status = 503
    before = datetime.now(UTC)
    assert await outbox.run_one(api.runtime, op_id) == "retry"
    [row] = await operations(api.runtime)
    assert row.status == "pending"
    assert row.attempts == 1
    assert timedelta(seconds=7) <= row.next_attempt_at - before <= timedelta(seconds=14)
    assert "try later" in row.last_error
    assert idp.deletes == 3  # the adapter's own three attempts for an idempotent DELETE
    assert await outbox.run_due(api.runtime) == 0  # not due yet

    await set_op(
        api.runtime,
        op_id,
        first_failed_at=datetime.now(UTC) - timedelta(hours=24, seconds=1),
        next_attempt_at=datetime.now(UTC),
    )
    assert await outbox.run_due(api.runtime) == 1
    listed = (await api.client.get("/v2/idp-operations", params={"filter[status]": "stuck"})).json()["data"]
    assert [o["id"] for o in listed] == [str(op_id)]
    assert listed[0]["operation"] == "deregister"
    assert listed[0]["client_id"] == "c1"
    assert listed[0]["attempts"] == 2
    await set_op(api.runtime, op_id, next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
    assert await outbox.run_due(api.runtime) == 0  # stuck entries wait for an admin

    idp.status = 204
    retried = await api.client.post(f"/v2/idp-operations/{op_id}/retry")
    assert retried.status_code == 202
    assert retried.json()["status"] == "pending"
    assert await outbox.run_due(api.runtime) == 1
    assert await operations(api.runtime) == []


async def test_a_refused_delete_is_stuck_at_once(api, idp):
    world = await make_world(api.runtime, api.client, provider=PROVIDER)
    op_id = await queue_deregister(api, world)
    idp.status = 403
    assert await outbox.run_one(api.runtime, op_id) == "stuck"
    assert idp.deletes == 1


async def test_give_up_finishes_the_local_delete_and_audits_a_known_orphan(api, idp):
    world = await make_world(api.runtime, api.client, provider=PROVIDER)
    async with api.runtime.unit(SYSTEM) as ctx:
        app = Application(
            id=uuid.uuid4(),
            portal_id=world.portal_id,
            developer_id=world.dev.developer_id,
            auth_strategy_id=uuid.UUID(world.strategy_id),
            dcr_provider_id=uuid.UUID(world.provider_id),
            name="orphan",
            reference_id="c1",
            status="deleting",
        )
        ctx.session.add(app)
        await ctx.session.commit()
    op_id = await queue_deregister(api, world, app.id)
    idp.status = 403
    assert await outbox.run_one(api.runtime, op_id) == "stuck"
    assert len(await app_rows(api.runtime)) == 1
    gone = await api.client.delete(f"/v2/idp-operations/{op_id}")
    assert gone.status_code == 204
    assert await operations(api.runtime) == []
    assert await app_rows(api.runtime) == []
    async with api.runtime.sessions() as session:
        event = (
            await session.execute(select(AuditEvent).where(AuditEvent.action == "idp_operation.give_up"))
        ).scalar_one()
    assert event.resource_id == str(op_id)
    assert event.changes["known_orphan"]["to"]["client_id"] == "c1"
    assert (await api.client.delete(f"/v2/idp-operations/{op_id}")).status_code == 404


async def test_the_runner_sweeps_provisioning_rows_and_drains_the_outbox(api, idp):
    world = await make_world(api.runtime, api.client, provider=PROVIDER)
    async with api.runtime.unit(SYSTEM) as ctx:
        stale = Application(
            id=uuid.uuid4(),
            portal_id=world.portal_id,
            developer_id=world.dev.developer_id,
            auth_strategy_id=uuid.UUID(world.strategy_id),
            dcr_provider_id=uuid.UUID(world.provider_id),
            name="crashed",
            status="provisioning",
            created_at=datetime.now(UTC) - timedelta(minutes=10),
        )
        fresh = Application(
            id=uuid.uuid4(),
            portal_id=world.portal_id,
            developer_id=world.dev.developer_id,
            auth_strategy_id=uuid.UUID(world.strategy_id),
            dcr_provider_id=uuid.UUID(world.provider_id),
            name="in flight",
            status="provisioning",
        )
        ctx.session.add_all([stale, fresh])
        await ctx.session.commit()
    runner = outbox.Runner(api.runtime, interval=0.05)
    await runner.start()
    try:
        # the test shares the runner's database connection: it waits for the runner's passes instead of
        # polling the table (two passes: the sweep queued its entry and the next round ran it)
        deadline = asyncio.get_running_loop().time() + 30
        while runner.passes < 2 and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - a counter
            await asyncio.sleep(0.05)
    finally:
        await runner.stop()
    assert [a.name for a in await app_rows(api.runtime)] == ["in flight"]
    [op] = await operations(api.runtime)
    # the crashed create never recorded a client, and this IdP cannot list clients: a possible orphan for admins
    assert (op.operation, op.status, op.application_id) == ("sweep", "stuck", stale.id)
    assert "possible orphan" in op.last_error
    assert "outbox" not in api.runtime.extras


async def test_idp_operations_need_an_admin(api):
    r = await api.client.get("/v2/idp-operations", headers={"Authorization": "Bearer kpat_unknown"})
    assert r.status_code == 401
    assert (await api.client.post(f"/v2/idp-operations/{uuid.uuid4()}/retry")).status_code == 404
