"""Faults between the control plane and a real IdP process, injected by the loopback fault proxy (issue 8 item 3).

The control plane is the in-process app of the `api` fixture (SQLite and PostgreSQL); the IdP is the session's
built-in IdP process (`keystile idp`, tests/fixtures/builtin_idp.py) behind an `rfc7591` provider. Every IdP request
the control plane makes (registration, RFC 7592 PUT and DELETE) travels through `FaultProxy` over loopback TCP: the
control plane's injected HTTP client sends its connections for the IdP's port to the proxy's port instead, as a DNS
entry for the IdP pointing at the proxy would. The client has a short read timeout (the adapter's timeout, as
`KEYSTILE_IDP_READ_TIMEOUT` sets it) so "latency beyond the timeout" stays fast.

For each fault (an answer later than the timeout, connection resets, a burst of 503s, 429 with `Retry-After`) and each
developer operation that reaches the IdP (create with DCR, refresh-token, delete; Portal API), a test checks:

- what the developer saw (status, the problem+json `detail` naming the IdP call and the cause);
- the rows before and after (applications, credentials, IdP operations, audit events) and the clients that exist at
  the IdP (read from its own store, `idp.sqlite3`): nothing lost, nothing twice;
- once the fault stops, the outbox is driven (entries made due, then run) until nothing is left to do, and the
  developer's retry works (create with the same `Idempotency-Key`, refresh-token again);
- audit events: exactly one success event per acknowledged change; no failure event for a 502/504 (the audit design,
  services/audit.py and management-api.md §6, records failures only for refused attempts, 4xx after authentication).

One more test covers the compensating DELETE of a create whose local commit failed after the IdP answered, when that
DELETE's answer is lost (dcr-providers.md §3.1 step 6).
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select, update

from keystile.dcr.naming import tag
from keystile.services import applications, outbox
from keystile.store.models import Application, AuditEvent, Credential, IdpOperation
from tests.api_client import Admin
from tests.fixtures.builtin_idp import BuiltinIdp
from tests.integration.faults.proxy import FaultProxy, Mode
from tests.integration.outbox.world import World, make_world

READ_TIMEOUT = 0.75  # the adapter's read timeout (KEYSTILE_IDP_READ_TIMEOUT) in these tests
ANSWER_LATENCY = 1.25  # the IdP's answer is held this long: past the read timeout, the request itself is carried out
RETRY_AFTER = 1  # seconds, on the proxy's 429 answers
ATTEMPTS = 3  # dcr.base.MAX_ATTEMPTS: a 429 is retried this often, each after Retry-After

FAULTS: dict[str, tuple[Mode, dict[str, Any]]] = {
    "latency": ("latency", {"latency": ANSWER_LATENCY, "latency_on": "answer"}),
    "reset": ("reset", {"reset_on": "request"}),
    "5xx": ("5xx", {"status": 503}),
    "429": ("429", {"retry_after": RETRY_AFTER}),
}
#: what the problem+json `detail` names after "the RFC 7591 server <operation> failed: "
CAUSE = {
    "latency": "timeout: no answer in time (ReadTimeout)",
    "reset": "connect_error: could not reach the IdP",
    "5xx": "503 http_503",
    "429": "429 http_429",
}
STATUS = {"latency": 504, "reset": 502, "5xx": 502, "429": 502}
#: whether the IdP carried out the request although the control plane got no answer
LANDS = {"latency": True, "reset": False, "5xx": False, "429": False}


class ThroughProxy(httpx.AsyncBaseTransport):
    """The real network, with connections for the IdP's port made to the fault proxy instead (Host unchanged)."""

    def __init__(self, idp_port: int, proxy_port: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.idp_port = idp_port
        self.proxy_port = proxy_port

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "127.0.0.1" and request.url.port == self.idp_port:
            request.url = request.url.copy_with(port=self.proxy_port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def idp_proxy(builtin_idp: BuiltinIdp) -> Iterator[FaultProxy]:
    """One fault proxy in front of the session's built-in IdP for this module (passing traffic between tests)."""
    port = urlsplit(builtin_idp.issuer).port
    assert port is not None
    proxy = FaultProxy(port).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@dataclass
class Scene:
    api: Admin
    idp: BuiltinIdp
    proxy: FaultProxy
    world: World

    @property
    def dev(self) -> dict[str, str]:
        return self.world.as_dev()

    def fault(self, name: str) -> None:
        mode, options = FAULTS[name]
        self.proxy.set_mode(mode, **options)

    def clear(self) -> None:
        self.proxy.set_mode("pass")

    async def create(self, name: str, key: str | None = None) -> httpx.Response:
        headers = {**self.dev, **({"Idempotency-Key": key} if key else {})}
        return await self.api.client.post("/api/v2/applications", json={"name": name}, headers=headers)

    async def created(self, name: str) -> dict[str, Any]:
        r = await self.create(name)
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def idp_clients(self) -> dict[str, str]:
        """`{client_id: client_name}` of every registered (non-admin) client, read from the IdP's own store."""
        conn = sqlite3.connect(f"file:{self.idp.data_dir / 'idp.sqlite3'}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT client_id, metadata FROM clients WHERE is_admin = 0").fetchall()
        finally:
            conn.close()
        return {row[0]: json.loads(row[1]).get("client_name", "") for row in rows}

    def idp_clients_of(self, app_id: str | uuid.UUID) -> list[str]:
        """The IdP clients tagged with `app_id` (`… (ks-<h12>)`)."""
        suffix = f"({tag(app_id)})"
        return [cid for cid, name in self.idp_clients().items() if name.endswith(suffix)]

    async def token(self, client_id: str, secret: str) -> int:
        """The status of a client-credentials request straight at the IdP (not through the proxy)."""
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(
                f"{self.idp.issuer}/token",
                data={"grant_type": "client_credentials", "scope": "read"},
                auth=(client_id, secret),
            )
        return r.status_code

    async def rows(self) -> Rows:
        async with self.api.runtime.sessions() as session:
            apps = list((await session.execute(select(Application))).scalars())
            creds = list((await session.execute(select(Credential))).scalars())
            ops = list((await session.execute(select(IdpOperation).order_by(IdpOperation.created_at))).scalars())
            events = list((await session.execute(select(AuditEvent).order_by(AuditEvent.created_at))).scalars())
        return Rows(apps, creds, ops, events)

    async def drain_outbox(self) -> int:
        """Run the outbox as its runner would once the fault is gone: every pending entry made due at once and run,
        until a pass finds nothing due (bounded). The number of attempts made."""
        attempts = 0
        for _ in range(5):
            async with self.api.runtime.sessions() as session:
                await session.execute(
                    update(IdpOperation)
                    .where(IdpOperation.status == "pending")
                    .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
                )
                await session.commit()
            ran = await outbox.run_due(self.api.runtime)
            if ran == 0:
                return attempts
            attempts += ran
        raise AssertionError("the outbox still had due entries after 5 passes")


@dataclass
class Rows:
    apps: list[Application]
    creds: list[Credential]
    ops: list[IdpOperation]
    events: list[AuditEvent]

    def events_since(self, before: Rows) -> list[tuple[str, str, str | None]]:
        """`(action, outcome, resource_id)` of the audit events written after `before`, in order."""
        known = {e.id for e in before.events}
        return [(e.action, e.outcome, e.resource_id) for e in self.events if e.id not in known]

    def creds_of(self, app_id: str) -> list[str]:
        return sorted(c.status for c in self.creds if str(c.application_id) == app_id)

    def app(self, app_id: str) -> Application | None:
        return next((a for a in self.apps if str(a.id) == app_id), None)


@pytest.fixture
async def scene(api: Admin, builtin_idp: BuiltinIdp, idp_proxy: FaultProxy) -> AsyncIterator[Scene]:
    """A portal world whose `rfc7591` provider is the built-in IdP (rotating IAT: a new secret on each PUT), with
    every IdP connection through the fault proxy."""
    port = urlsplit(builtin_idp.issuer).port
    assert port is not None
    original = api.runtime.http
    api.runtime.http = httpx.AsyncClient(
        transport=ThroughProxy(port, idp_proxy.port),
        timeout=httpx.Timeout(connect=5.0, read=READ_TIMEOUT, write=5.0, pool=5.0),
        follow_redirects=False,
    )
    idp_proxy.set_mode("pass")
    try:
        provider = {
            "name": f"builtin-{uuid.uuid4().hex[:8]}",
            "provider_type": "rfc7591",
            "issuer": builtin_idp.issuer,
            "dcr_config": {
                # configured, not discovered: the registration itself is the first request each test sends
                "registration_endpoint": f"{builtin_idp.issuer}/register",
                "initial_access_token": builtin_idp.rotating_iat,
                "rotates_secret_on_put": True,
            },
        }
        world = await make_world(api.runtime, api.client, provider=provider)
        yield Scene(api, builtin_idp, idp_proxy, world)
    finally:
        idp_proxy.set_mode("pass")
        await api.runtime.http.aclose()
        api.runtime.http = original


def assert_problem(r: httpx.Response, fault: str, operation: str) -> None:
    assert r.status_code == STATUS[fault], r.text
    assert r.headers["content-type"] == "application/problem+json"
    # an IdP's Retry-After is honoured by the adapter's retries, then passed on with the 502
    assert r.headers.get("retry-after") == (str(RETRY_AFTER) if fault == "429" else None)
    detail = r.json()["detail"]
    assert detail.startswith(f"the RFC 7591 server {operation} failed: {CAUSE[fault]}"), detail


def assert_retry_after_honoured(proxy: FaultProxy, since: int) -> None:
    """The adapter sent the request `ATTEMPTS` times, each retry at least `Retry-After` after the 429 before it."""
    times = [t for t, mode in proxy.opened[since:] if mode == "429"]
    assert len(times) == ATTEMPTS, proxy.opened[since:]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= RETRY_AFTER - 0.05 for gap in gaps), gaps


faults = pytest.mark.parametrize("fault", list(FAULTS))


@faults
async def test_create_under_an_idp_fault(scene: Scene, fault: str) -> None:
    clients_before = scene.idp_clients()
    before = await scene.rows()
    opened = len(scene.proxy.opened)
    key = f"create-{uuid.uuid4()}"

    scene.fault(fault)
    r = await scene.create("billing", key)
    scene.clear()

    assert_problem(r, fault, "register")
    if fault == "429":
        assert_retry_after_honoured(scene.proxy, opened)
    during = await scene.rows()
    assert len(during.apps) == len(before.apps)  # the `provisioning` row went again
    assert len(during.creds) == len(before.creds)
    assert during.events_since(before) == []  # nothing acknowledged; a 5xx answer is not a refused attempt
    if fault == "429":
        assert during.ops == []  # a 429 is a known outcome: the registration did not happen
        lost_app = None
    else:  # the registration may have happened: one sweep for the application id the row had
        [sweep] = during.ops
        assert (sweep.operation, sweep.status, sweep.attempts) == ("sweep", "pending", 0)
        lost_app = sweep.application_id
        assert lost_app is not None
        # the answer-late registration was carried out: exactly one client, tagged with that id, and nothing else
        lost_clients = scene.idp_clients_of(lost_app)
        assert len(lost_clients) == (1 if LANDS[fault] else 0)
        assert set(scene.idp_clients()) - set(clients_before) == set(lost_clients)

    # The fault is gone: the outbox runs what was queued; the developer repeats the create with the same key.
    assert await scene.drain_outbox() == (0 if lost_app is None else 1)
    again = await scene.create("billing", key)
    assert again.status_code == 201, again.text
    app_id = again.json()["id"]
    after = await scene.rows()
    assert {str(a.id) for a in after.apps} - {str(a.id) for a in before.apps} == {app_id}
    assert len(after.apps) == len(before.apps) + 1
    assert after.creds_of(app_id) == ["active"]
    assert after.events_since(before) == [("application.create", "success", app_id)]
    [client_id] = scene.idp_clients_of(app_id)  # one client for the application, not two
    assert client_id == again.json()["credentials"]["client_id"]
    assert await scene.token(client_id, again.json()["credentials"]["client_secret"]) == 200
    new_clients = set(scene.idp_clients()) - set(clients_before)
    if lost_app is None:
        assert new_clients == {client_id}
        assert after.ops == []
    else:
        # rfc7591 cannot list clients: the sweep becomes a "possible orphan" an admin sees, naming the tag. When the
        # registration had landed, that client is the only other new one at the IdP.
        [stuck] = after.ops
        assert (stuck.id, stuck.status) == (sweep.id, "stuck")
        assert "possible orphan" in (stuck.last_error or "")
        assert tag(lost_app) in (stuck.last_error or "")
        assert new_clients == {client_id, *scene.idp_clients_of(lost_app)}


@faults
async def test_refresh_token_under_an_idp_fault(scene: Scene, fault: str) -> None:
    app = await scene.created("billing")
    app_id, creds = app["id"], app["credentials"]
    clients_before = scene.idp_clients()
    before = await scene.rows()
    opened = len(scene.proxy.opened)

    scene.fault(fault)
    r = await scene.api.client.post(f"/api/v2/applications/{app_id}/refresh-token", headers=scene.dev)
    scene.clear()

    assert_problem(r, fault, "rotate_secret")
    if fault == "429":
        assert_retry_after_honoured(scene.proxy, opened)
    during = await scene.rows()
    row = during.app(app_id)
    assert row is not None and row.status == "active"
    # a PUT whose outcome is unknown may have rotated the secret and the RAT: the application is flagged, and
    # both the developer and the portal's admins can see it
    flagged = fault != "429"
    assert row.needs_attention is flagged, r.text
    mine = await scene.api.client.get(f"/api/v2/applications/{app_id}", headers=scene.dev)
    assert mine.json()["needs_attention"] is flagged
    listed = await scene.api.client.get(
        f"/v2/portals/{scene.world.portal_id}/applications", params={"filter[needs_attention]": "true"}
    )
    assert [a["id"] for a in listed.json()["data"]] == ([app_id] if flagged else [])
    assert during.creds_of(app_id) == ["active"]  # no credential record made or ended
    assert during.ops == before.ops == []
    assert during.events_since(before) == []
    assert set(scene.idp_clients()) == set(clients_before)  # no client made or lost at the IdP
    old_secret_works = await scene.token(creds["client_id"], creds["client_secret"])
    # the answer-late PUT was carried out at the IdP: the old secret died with it (and the RAT keystile holds)
    assert old_secret_works == (401 if LANDS[fault] else 200)

    assert await scene.drain_outbox() == 0
    again = await scene.api.client.post(f"/api/v2/applications/{app_id}/refresh-token", headers=scene.dev)
    after = await scene.rows()
    if LANDS[fault]:
        # RFC 7592 rotated the registration access token in the lost answer: keystile cannot manage the client
        # any more (dcr-providers.md §2.6; rfc7591 has no recovery), and says so
        assert again.status_code == 502, again.text
        assert "invalid_token" in again.json()["detail"]
        assert after.creds_of(app_id) == ["active"]
        assert after.events_since(before) == []
    else:
        assert again.status_code == 201, again.text
        new = again.json()
        assert new["client_id"] == creds["client_id"]
        assert await scene.token(new["client_id"], new["client_secret"]) == 200
        assert await scene.token(creds["client_id"], creds["client_secret"]) == 401
        assert after.creds_of(app_id) == ["active", "revoked"]
        assert after.events_since(before) == [("application.refresh_token", "success", app_id)]
        assert after.app(app_id).needs_attention is False  # a refresh that worked clears the flag
    assert set(scene.idp_clients()) == set(clients_before)
    assert scene.idp_clients_of(app_id) == [creds["client_id"]]


@faults
async def test_delete_under_an_idp_fault(scene: Scene, fault: str) -> None:
    app = await scene.created("billing")
    app_id, creds = app["id"], app["credentials"]
    clients_before = scene.idp_clients()
    before = await scene.rows()
    opened = len(scene.proxy.opened)

    scene.fault(fault)
    r = await scene.api.client.delete(f"/api/v2/applications/{app_id}", headers=scene.dev)
    scene.clear()

    # IdP first (dcr-providers.md §3.2): the developer's delete is acknowledged, the IdP client follows
    assert r.status_code == 204, r.text
    if fault == "429":
        assert_retry_after_honoured(scene.proxy, opened)
    assert (await scene.api.client.get(f"/api/v2/applications/{app_id}", headers=scene.dev)).status_code == 404
    admin_view = await scene.api.client.get(f"/v2/applications/{app_id}")
    assert admin_view.json()["status"] == "deleting"
    during = await scene.rows()
    [op] = during.ops
    assert (op.operation, op.status, op.attempts, op.client_id) == ("deregister", "pending", 1, creds["client_id"])
    assert f"deregister failed: {CAUSE[fault]}" in (op.last_error or "")
    assert during.events_since(before) == [("application.delete", "success", app_id)]
    # the DELETE whose answer came late was carried out; the others never reached the IdP
    assert scene.idp_clients_of(app_id) == ([] if LANDS[fault] else [creds["client_id"]])

    assert await scene.drain_outbox() == 1  # one attempt finishes it (a 401 after a DELETE that landed = gone)
    after = await scene.rows()
    assert [(o.operation, o.status, o.last_error) for o in after.ops] == []
    assert after.app(app_id) is None
    assert after.creds_of(app_id) == []
    assert after.events_since(before) == [
        ("application.delete", "success", app_id),
        ("application.deregistered", "success", app_id),
    ]
    assert scene.idp_clients_of(app_id) == []
    assert set(scene.idp_clients()) == set(clients_before) - {creds["client_id"]}
    assert await scene.token(creds["client_id"], creds["client_secret"]) == 401
    assert (await scene.api.client.get(f"/v2/applications/{app_id}")).status_code == 404


@pytest.mark.parametrize("fault", ["5xx", "latency"])
async def test_a_rotating_patch_under_an_idp_fault_keeps_none_of_its_changes(scene: Scene, fault: str) -> None:
    """A redirect change on a provider that rotates on PUT calls the IdP in the request: when that fails, the PATCH
    keeps nothing (not the name sent with it either), and an unknown outcome flags the application, as a refresh's
    would."""
    app = await scene.created("billing")
    app_id = app["id"]
    before = await scene.rows()
    scene.fault(fault)
    r = await scene.api.client.patch(
        f"/api/v2/applications/{app_id}",
        json={"name": "billing v2", "redirect_uri": "https://app.example.com/cb"},
        headers=scene.dev,
    )
    scene.clear()
    assert r.status_code == STATUS[fault], r.text
    after = await scene.rows()
    row = after.app(app_id)
    assert row is not None
    assert (row.name, row.redirect_uri) == ("billing", None)
    # the PUT's outcome is unknown after a 5xx or no answer: it may have rotated the secret and the RAT
    assert row.needs_attention is True
    assert (row.handles or {}).get("rat_uncertain") is True
    assert after.creds_of(app_id) == ["active"]
    assert after.events_since(before) == []


async def test_a_client_whose_update_answer_was_lost_is_never_taken_for_deleted(scene: Scene) -> None:
    """A refresh whose answer came too late rotated the RAT at the IdP; then the delete's answer came too late too.
    The retried DELETE's 401 may be the stale RAT's, not a client already gone: keystile must not believe it deleted
    (that would orphan the client), but stop and tell an admin which client to delete by hand; retrying does not
    change that."""
    app = await scene.created("billing")
    app_id, creds = app["id"], app["credentials"]
    scene.fault("latency")
    r = await scene.api.client.post(f"/api/v2/applications/{app_id}/refresh-token", headers=scene.dev)
    assert r.status_code == 504, r.text
    r = await scene.api.client.delete(f"/api/v2/applications/{app_id}", headers=scene.dev)
    scene.clear()
    assert r.status_code == 204, r.text

    assert await scene.drain_outbox() == 1
    after = await scene.rows()
    [op] = after.ops
    assert (op.operation, op.status, op.client_id) == ("deregister", "stuck", creds["client_id"])
    assert "the stored token may be stale" in (op.last_error or "")
    assert f"cannot tell whether client {creds['client_id']} still exists" in (op.last_error or "")
    assert after.app(app_id) is not None and after.app(app_id).status == "deleting"  # type: ignore[union-attr]
    assert scene.idp_clients_of(app_id) == [creds["client_id"]]  # still there: an admin must delete it

    # an admin's retry meets the same 401 and stays stuck (a refused DELETE is no sign that one landed)
    retried = await scene.api.client.post(f"/v2/idp-operations/{op.id}/retry")
    assert retried.status_code == 202, retried.text
    assert await scene.drain_outbox() <= 1
    [again] = (await scene.rows()).ops
    assert again.status == "stuck"
    assert scene.idp_clients_of(app_id) == [creds["client_id"]]


async def test_a_compensating_delete_whose_answer_is_lost_is_finished_by_the_outbox(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The IdP registered the client, then the local commit failed (dcr-providers.md §3.1 step 6) and the IdP's answer
    to the compensating DELETE came too late: the DELETE was carried out, the outbox entry must still finish."""
    clients_before = scene.idp_clients()
    before = await scene.rows()

    async def broken(ctx: object) -> None:
        scene.fault("latency")  # from here on the IdP's answers come late
        raise RuntimeError("database went away")

    monkeypatch.setattr(applications.installation, "bump_config_version", broken)
    r = await scene.create("billing")
    scene.clear()
    monkeypatch.undo()

    assert r.status_code == 500, r.text  # an unexpected error, with the trace id; no secret handed out
    assert "credentials" not in r.text

    during = await scene.rows()
    assert len(during.apps) == len(before.apps)
    assert len(during.creds) == len(before.creds)
    assert during.events_since(before) == []  # nothing was acknowledged
    [op] = during.ops
    assert (op.operation, op.status) == ("deregister", "pending")
    assert "deregister failed: timeout" in (op.last_error or "")
    assert op.application_id is not None
    assert scene.idp_clients_of(op.application_id) == []  # the late-answered DELETE was carried out
    assert set(scene.idp_clients()) == set(clients_before)

    assert await scene.drain_outbox() == 1  # its 401 means "already gone": done, not stuck
    after = await scene.rows()
    assert [(o.operation, o.status, o.last_error) for o in after.ops] == []
    assert after.events_since(before) == []
    assert set(scene.idp_clients()) == set(clients_before)
