"""The outbox of IdP work done after the local commit (contracts/dcr-providers.md §1.4, §3; management-api.md §7).

Entries (`idp_operations` rows) are written in the same transaction as the change that needs them, so a crash
never loses one. Each is then attempted, at once where the request can afford it and else by the runner:

- `deregister`: delete a client (application delete, compensation of a failed create, a trial clean-up). With
  `payload.finalize_application` the application row (`deleting`) is removed once the IdP has said yes.
- `revoke_secret`: end one secret of a client (zero-downtime rotation).
- `event`: `update_application` / `add_registration` / `remove_registration`, in order per application.
- `sweep`: a create whose outcome is unknown: with `list_clients`, deregister every client tagged with the
  application; without, a "possible orphan" entry for admins (`stuck`).
- `probe`: a new secret the IdP does not accept at once is probed for five minutes → credential `active`/`failed`.

Secrets (registration access tokens, registration client URIs, a secret under probe) are vault ciphertexts bound to
the entry. Failed attempts back off 10 s doubling to 15 min with jitter; an entry failing for 24 h, or failing in
a way no retry can fix, becomes `stuck` and waits for an admin (`POST …/retry`, `DELETE` = give up).

Entries are claimed with `SELECT … FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite has one writer) and leased by
moving `next_attempt_at` forward, so no IdP call runs inside an open transaction and replicas never share one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy import delete, select
from sqlalchemy import update as sql_update

from keystile.dcr.base import DcrProvider as Adapter
from keystile.dcr.naming import tag
from keystile.dcr.types import ClientRef, HookEvent, ProbeResult, StrategyInfo
from keystile.domain.errors import ConfigurationError, ConflictError, KeystileError, NotFoundError, ProviderError
from keystile.domain.listing import ListQuery, ListSpec, Page
from keystile.domain.time import rfc3339
from keystile.services import audit, idempotency, installation
from keystile.services.context import SYSTEM, Ctx, Runtime
from keystile.store.listing import paginate
from keystile.store.models import Application, Credential, DcrProvider, IdpOperation, Registration

__all__ = [
    "BACKOFF_CAP",
    "BACKOFF_START",
    "LIST_SPEC",
    "PROBE_WINDOW",
    "STUCK_AFTER",
    "SWEEP_AGE",
    "Runner",
    "backoff",
    "claim",
    "enqueue",
    "enqueue_deregister",
    "enqueue_event",
    "get",
    "give_up",
    "list_operations",
    "may_have_landed",
    "ref_parts",
    "renew_deregister",
    "retry",
    "run_due",
    "run_one",
    "sweep_provisioning",
]

log = logging.getLogger("keystile.outbox")

TABLE = "idp_operations"
BACKOFF_START = 10.0
BACKOFF_CAP = 15 * 60.0
STUCK_AFTER = timedelta(hours=24)
LEASE = timedelta(minutes=2)
SWEEP_AGE = timedelta(minutes=5)
PROBE_WINDOW = timedelta(minutes=5)
PROBE_INTERVAL = 10.0
PURGE_EVERY = 600  # runner passes between two purges of expired Idempotency-Keys (about ten minutes)

LIST_SPEC = ListSpec(
    filters={
        "status": "string",
        "operation": "string",
        "dcr_provider_id": "uuid",
        "application_id": "uuid",
        "client_id": "string",
        "created_at": "datetime",
    },
    sorts=("created_at", "next_attempt_at", "attempts", "status"),
)


def _now() -> datetime:
    return datetime.now(UTC)


def backoff(attempts: int, *, uniform: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds before the next attempt after `attempts` failures: 10 s doubling to 15 min, ±25 % jitter."""
    base = min(BACKOFF_CAP, BACKOFF_START * 2 ** max(0, attempts - 1))
    return float(min(BACKOFF_CAP, base * uniform(0.75, 1.25)))


# ---- writing entries ------------------------------------------------------------------------------------


def ref_parts(ref: ClientRef) -> tuple[dict[str, Any], dict[str, str]]:
    """`(plain payload, secrets in clear)` that rebuild `ref` later."""
    payload = {
        "handles": dict(ref.handles),
        "metadata": dict(ref.metadata),
        "created_at": ref.created_at.isoformat() if ref.created_at else None,
    }
    secrets = {f"secret_handles.{k}": v.get_secret_value() for k, v in ref.secret_handles.items()}
    return payload, secrets


def enqueue(
    ctx: Ctx,
    *,
    operation: str,
    provider_id: uuid.UUID | None,
    application_id: uuid.UUID | None,
    client_id: str | None = None,
    payload: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    status: str = "pending",
    last_error: str | None = None,
    delay: float = 0.0,
) -> IdpOperation:
    """Add an entry to the caller's transaction (encrypting `secrets`)."""
    row = IdpOperation(
        id=uuid.uuid4(),
        dcr_provider_id=provider_id,
        application_id=application_id,
        client_id=client_id,
        operation=operation,
        payload=payload or {},
        status=status,
        attempts=0,
        last_error=last_error,
        next_attempt_at=_now() + timedelta(seconds=delay),
        created_at=_now(),
    )
    row.secrets = {
        k: ctx.vault.encrypt(v, table=TABLE, row_id=row.id, field=k) for k, v in (secrets or {}).items() if v
    }
    ctx.session.add(row)
    return row


def may_have_landed(exc: ProviderError) -> bool:
    """Whether a failed IdP call may still have been carried out: an answer came, or none came after the request
    went out (a read timeout, a connection dropped after sending). A DELETE that may have landed makes the next
    one's 401 mean "already gone" (RFC 7592: the registration access token died with the client)."""
    return exc.may_have_landed


def enqueue_deregister(
    ctx: Ctx,
    provider_id: uuid.UUID,
    ref: ClientRef,
    *,
    finalize_application: bool = False,
    last_error: str | None = None,
    maybe_landed: bool = False,
) -> IdpOperation:
    """A deregister of `ref`; with `finalize_application` the application row goes once the IdP agreed;
    `maybe_landed` when a DELETE already sent may have been carried out."""
    payload, secrets = ref_parts(ref)
    payload["finalize_application"] = finalize_application
    if maybe_landed:
        payload["maybe_landed"] = 1
    return enqueue(
        ctx,
        operation="deregister",
        provider_id=provider_id,
        application_id=ref.application_id,
        client_id=ref.client_id,
        payload=payload,
        secrets=secrets,
        last_error=last_error,
    )


async def renew_deregister(ctx: Ctx, ref: ClientRef) -> None:
    """A queued deregister of `ref.application_id` takes the client handles of `ref` (the IdP issued new ones, e.g. a
    new registration access token, after the delete was queued). Part of the caller's transaction."""
    payload, secrets = ref_parts(ref)
    rows = await ctx.session.execute(
        select(IdpOperation).where(
            IdpOperation.application_id == ref.application_id,
            IdpOperation.operation == "deregister",
            IdpOperation.status.in_(("pending", "stuck")),
        )
    )
    for row in rows.scalars():
        row.payload = {**row.payload, **payload}
        row.secrets = {k: ctx.vault.encrypt(v, table=TABLE, row_id=row.id, field=k) for k, v in secrets.items() if v}


def enqueue_event(
    ctx: Ctx,
    app: Application,
    event_type: str,
    *,
    product_version_id: uuid.UUID | None = None,
    audience: str | None = None,
) -> IdpOperation:
    """An event for the provider of `app`; it reads the application as it is when the entry runs."""
    return enqueue(
        ctx,
        operation="event",
        provider_id=app.dcr_provider_id,
        application_id=app.id,
        client_id=app.reference_id,
        payload={
            "event_type": event_type,
            "api_product_version_id": str(product_version_id) if product_version_id else None,
            "audience": audience,
        },
    )


# ---- reading entries ------------------------------------------------------------------------------------


def view(row: IdpOperation) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "dcr_provider_id": str(row.dcr_provider_id) if row.dcr_provider_id else None,
        "application_id": str(row.application_id) if row.application_id else None,
        "client_id": row.client_id,
        "operation": row.operation,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "next_attempt_at": rfc3339(row.next_attempt_at),
        "created_at": rfc3339(row.created_at),
    }


async def list_operations(ctx: Ctx, query: ListQuery) -> Page:
    cols: dict[str, Any] = {
        "status": IdpOperation.status,
        "operation": IdpOperation.operation,
        "dcr_provider_id": IdpOperation.dcr_provider_id,
        "application_id": IdpOperation.application_id,
        "client_id": IdpOperation.client_id,
        "created_at": IdpOperation.created_at,
        "next_attempt_at": IdpOperation.next_attempt_at,
        "attempts": IdpOperation.attempts,
    }
    rows, total = await paginate(ctx.session, select(IdpOperation), query, cols, IdpOperation.id)
    return Page([view(r[0]) for r in rows], query.page_number, query.page_size, total)


async def _get_row(ctx: Ctx, op_id: uuid.UUID, *, to_change: bool = False) -> IdpOperation:
    """The entry; `to_change`: not while it is being carried out (PostgreSQL: wait for its row lock; SQLite: 409)."""
    if to_change and op_id in _running(ctx.runtime):
        raise ConflictError("this operation is being carried out now; look again in a moment")
    row = await ctx.session.get(IdpOperation, op_id, with_for_update=to_change, populate_existing=to_change)
    if row is None:
        raise NotFoundError()
    return row


async def get(ctx: Ctx, op_id: uuid.UUID) -> dict[str, Any]:
    return view(await _get_row(ctx, op_id))


async def retry(ctx: Ctx, op_id: uuid.UUID) -> dict[str, Any]:
    """Admin: run the entry again now, with a fresh 24 h window (202)."""
    row = await _get_row(ctx, op_id, to_change=True)
    row.status = "pending"
    row.next_attempt_at = _now()
    row.first_failed_at = None
    audit.record(ctx, "idp_operation.retry", "idp_operation", row.id, status_code=202)
    await ctx.session.commit()
    runner = ctx.runtime.extras.get("outbox")
    if isinstance(runner, Runner):
        runner.wake()
    return view(row)


async def give_up(ctx: Ctx, op_id: uuid.UUID) -> None:
    """Admin: forget the entry. A pending application delete becomes final locally; audited as a known orphan."""
    row = await _get_row(ctx, op_id, to_change=True)
    changes: dict[str, Any] = {
        "operation": {"from": row.operation, "to": None},
        "known_orphan": {"from": None, "to": {"client_id": row.client_id, "dcr_provider_id": _s(row.dcr_provider_id)}},
    }
    if row.operation == "deregister" and row.payload.get("finalize_application") and row.application_id:
        await _delete_application(ctx, row.application_id)
    await ctx.session.delete(row)
    audit.record(ctx, "idp_operation.give_up", "idp_operation", row.id, status_code=204, changes=changes)
    await ctx.session.commit()


def _s(value: object) -> str | None:
    return str(value) if value is not None else None


# ---- running entries ------------------------------------------------------------------------------------


async def claim(runtime: Runtime, *, op_id: uuid.UUID | None = None, limit: int = 20) -> list[uuid.UUID]:
    """Lease due entries (or one named entry): `FOR UPDATE SKIP LOCKED`, `next_attempt_at` moved by the lease."""
    now = _now()
    async with runtime.sessions() as session:
        stmt = select(IdpOperation).where(IdpOperation.status == "pending")
        if op_id is not None:
            stmt = stmt.where(IdpOperation.id == op_id)
        else:
            stmt = stmt.where(IdpOperation.next_attempt_at <= now).order_by(IdpOperation.created_at).limit(limit)
        rows = list((await session.execute(stmt.with_for_update(skip_locked=True))).scalars())
        claimed: list[uuid.UUID] = []
        seen_apps: set[uuid.UUID] = set()
        for row in rows:
            if row.operation == "event" and row.application_id is not None:
                if row.application_id in seen_apps or await _has_older_event(session, row):
                    continue  # events run in order per application
                seen_apps.add(row.application_id)
            row.next_attempt_at = now + LEASE
            claimed.append(row.id)
        await session.commit()
        return claimed


async def _has_older_event(session: Any, row: IdpOperation) -> bool:
    older = await session.execute(
        select(IdpOperation.id)
        .where(
            IdpOperation.application_id == row.application_id,
            IdpOperation.operation == "event",
            IdpOperation.status == "pending",
            IdpOperation.created_at < row.created_at,
        )
        .limit(1)
    )
    return older.first() is not None


async def run_one(runtime: Runtime, op_id: uuid.UUID) -> str:
    """Attempt one entry now (unless another worker holds it). Returns `done`, `retry`, `stuck` or `busy`."""
    if op_id not in await claim(runtime, op_id=op_id):
        return "busy"
    return await _execute(runtime, op_id)


async def run_due(runtime: Runtime, *, limit: int = 20) -> int:
    """Attempt every due entry once; the number attempted."""
    ids = await claim(runtime, limit=limit)
    for op_id in ids:
        await _execute(runtime, op_id)
    return len(ids)


def _ref(ctx: Ctx, row: IdpOperation) -> ClientRef:
    payload = row.payload
    secret_handles = {
        k.split(".", 1)[1]: SecretStr(ctx.vault.decrypt(v, table=TABLE, row_id=row.id, field=k))
        for k, v in row.secrets.items()
        if k.startswith("secret_handles.")
    }
    handles = dict(payload.get("handles") or {})
    landed = int(payload.get("maybe_landed", 0))
    if landed:
        handles["deregister_attempts"] = landed
    created = payload.get("created_at")
    return ClientRef(
        client_id=row.client_id or "",
        application_id=row.application_id or uuid.UUID(int=0),
        created_at=datetime.fromisoformat(created) if created else None,
        handles=handles,
        secret_handles=secret_handles,
        metadata=dict(payload.get("metadata") or {}),
    )


async def _adapter(ctx: Ctx, row: IdpOperation) -> Adapter:
    from keystile.services.verification import adapter_for  # verification imports the catalog services

    provider = await ctx.session.get(DcrProvider, row.dcr_provider_id) if row.dcr_provider_id else None
    if provider is None:
        raise ConfigurationError("the DCR provider of this operation no longer exists")
    return adapter_for(ctx, provider)


def _running(runtime: Runtime) -> set[uuid.UUID]:
    """The entries this process is carrying out now."""
    running: set[uuid.UUID] = runtime.extras.setdefault("outbox_running", set())
    return running


async def _execute(runtime: Runtime, op_id: uuid.UUID) -> str:
    """Carry out one claimed entry. On PostgreSQL its row stays locked until the end, IdP call included (claims skip
    it; an admin's retry or give-up waits for it); reads hold no locks there. On SQLite a lock is the whole
    database's: the attempt is recorded and committed first, the IdP is waited on with no transaction open, and the
    entry is guarded in this process (SQLite runs one control plane) so a retry or give-up cannot cut in."""
    running = _running(runtime)
    if op_id in running:
        return "busy"
    running.add(op_id)
    try:
        async with runtime.unit(SYSTEM) as ctx:
            row = await ctx.session.get(IdpOperation, op_id, with_for_update=True, populate_existing=True)
            if row is None or row.status != "pending":
                return "done"
            row.attempts += 1
            if runtime.engine.dialect.name == "sqlite":
                await ctx.session.commit()
            try:
                outcome = await _perform(ctx, row)
            except ProviderError as exc:
                return await _failed(ctx, row, exc, retryable=exc.retryable or exc.outcome_unknown)
            except (ConfigurationError, KeystileError) as exc:
                return await _failed(ctx, row, exc, retryable=False)
            if outcome == "done":
                await ctx.session.delete(row)
            await ctx.session.commit()
            return outcome
    finally:
        running.discard(op_id)


async def _failed(ctx: Ctx, row: IdpOperation, exc: KeystileError, *, retryable: bool) -> str:
    now = _now()
    row.last_error = str(exc)[:1000]
    row.first_failed_at = row.first_failed_at or now
    if isinstance(exc, ProviderError) and may_have_landed(exc):
        row.payload = {**row.payload, "maybe_landed": int(row.payload.get("maybe_landed", 0)) + 1}
    if not retryable or now - row.first_failed_at >= STUCK_AFTER:
        row.status = "stuck"
        outcome = "stuck"
    else:
        delay = backoff(row.attempts)
        if isinstance(exc, ProviderError) and exc.retry_after:
            delay = max(delay, exc.retry_after)
        row.next_attempt_at = now + timedelta(seconds=delay)
        outcome = "retry"
    log.warning("idp operation %s (%s) failed, %s: %s", row.id, row.operation, outcome, row.last_error)
    await ctx.session.commit()
    return outcome


async def _perform(ctx: Ctx, row: IdpOperation) -> str:
    if row.operation == "deregister":
        adapter = await _adapter(ctx, row)
        await ctx.before_idp_call()
        await adapter.deregister(_ref(ctx, row))
        if row.payload.get("finalize_application") and row.application_id:
            await _delete_application(ctx, row.application_id)
            audit.record(ctx, "application.deregistered", "application", row.application_id, status_code=204)
        return "done"
    if row.operation == "revoke_secret":
        adapter = await _adapter(ctx, row)
        await ctx.before_idp_call()
        await adapter.revoke_secret(_ref(ctx, row), str(row.payload["credential_id"]))
        return "done"
    if row.operation == "event":
        return await _event(ctx, row)
    if row.operation == "sweep":
        return await _sweep(ctx, row)
    if row.operation == "probe":
        return await _probe(ctx, row)
    raise ConfigurationError(f"unknown idp operation {row.operation!r}")


async def _event(ctx: Ctx, row: IdpOperation) -> str:
    from keystile.services import applications  # applications imports the outbox

    app = await ctx.session.get(Application, row.application_id) if row.application_id else None
    if app is None or app.status != "active" or app.dcr_provider_id is None:
        return "done"  # the application is gone or going: nothing left to tell the IdP
    meta = await applications.app_metadata(ctx, app)
    event = HookEvent(
        event_type=row.payload["event_type"],
        app=meta,
        api_product_version_id=row.payload.get("api_product_version_id"),
        audience=row.payload.get("audience"),
    )
    ref = applications.client_ref(ctx, app)
    adapter = await _adapter(ctx, row)
    await ctx.before_idp_call()
    try:
        update = await adapter.on_event(ref, event)
    except ProviderError as exc:
        update = exc.extra.get("update")  # the PUT landed, without the secret a rotating server should send
        if update is None:
            if exc.extra.get("needs_attention"):  # kept: `_failed` commits this session
                applications.mark_handles_uncertain(await _reread(ctx, app))
            raise
    if update is not None:
        app = await _reread(ctx, app)  # merged into the row as it is now, not as it was before the wait
        applications.store_client_update(ctx, app, update.handles, update.secret_handles, update.metadata)
        if update.client_secret is not None:
            app.needs_attention = True  # a rotation nobody can be shown; the developer must refresh the secret
    return "done"


async def _reread(ctx: Ctx, app: Application) -> Application:
    """`app` read again (another request may have changed it while the IdP was waited on); the loaded one if it
    is gone meanwhile (its changes then go nowhere)."""
    return await ctx.session.get(Application, app.id, populate_existing=True) or app


async def _sweep(ctx: Ctx, row: IdpOperation) -> str:
    adapter = await _adapter(ctx, row)
    app_id = row.application_id
    if app_id is None:
        return "done"
    if not adapter.capabilities.list_clients:
        row.status = "stuck"
        row.last_error = (
            f"possible orphan: this IdP cannot list clients; look for a client named '… ({tag(app_id)})' "
            "and delete it, then give up this entry"
        )
        return "kept"
    h12 = uuid.UUID(str(app_id)).hex[-12:]
    await ctx.before_idp_call()
    async for client in adapter.list_clients():
        if client.application_id in (h12, str(app_id)):
            await adapter.deregister(ClientRef(client_id=client.client_id, application_id=app_id))
    return "done"


async def _probe(ctx: Ctx, row: IdpOperation) -> str:
    adapter = await _adapter(ctx, row)
    payload = row.payload
    stored = row.secrets["client_secret"]
    secret = SecretStr(ctx.vault.decrypt(stored, table=TABLE, row_id=row.id, field="client_secret"))
    strategy = StrategyInfo(
        scopes=tuple(payload.get("scopes") or ()),
        token_post_args_names=tuple(payload.get("token_post_args_names") or ()),
        token_post_args_values=tuple(payload.get("token_post_args_values") or ()),
    )
    cred_id = uuid.UUID(payload["credential_row_id"])
    await ctx.before_idp_call()
    try:
        result = await adapter.probe(row.client_id or "", secret, strategy)
    except ProviderError as exc:
        result, row.last_error = ProbeResult.REJECTED, str(exc)
    if result is not ProbeResult.REJECTED or _now() - row.created_at >= PROBE_WINDOW:
        # only a credential still waiting on its probe: one revoked or replaced meanwhile stays so
        settled = "active" if result is not ProbeResult.REJECTED else "failed"
        await ctx.session.execute(
            sql_update(Credential)
            .where(Credential.id == cred_id, Credential.status == "pending")
            .values(status=settled)
        )
        return "done"
    row.next_attempt_at = _now() + timedelta(seconds=PROBE_INTERVAL)
    return "kept"


async def _delete_application(ctx: Ctx, app_id: uuid.UUID) -> None:
    """The local end of an application delete: its registrations, credentials and row; then a developer deleted
    by an admin goes with their last application (services.developers.purge_deleted)."""
    from keystile.services import developers  # developers imports the outbox

    app = await ctx.session.get(Application, app_id)
    if app is None:
        return
    had_approved = (
        await ctx.session.execute(
            select(Registration.id).where(Registration.application_id == app_id, Registration.status == "approved")
        )
    ).first() is not None
    await ctx.session.execute(delete(Registration).where(Registration.application_id == app_id))
    await ctx.session.execute(delete(Credential).where(Credential.application_id == app_id))
    await ctx.session.delete(app)
    if had_approved:
        await installation.bump_config_version(ctx)
    await ctx.session.flush()
    await developers.purge_deleted(ctx)


# ---- start-up sweep and the runner ----------------------------------------------------------------------


async def sweep_provisioning(runtime: Runtime, *, older_than: timedelta = SWEEP_AGE) -> int:
    """Settle applications a crash left `provisioning` (dcr-providers.md §3.1 step 7); the number settled.

    A row that recorded its client (the IdP answered, the final commit never happened) gets a deregister of that
    client; one that did not gets a sweep. Either way the row goes. Rows younger than `older_than` are creates
    still in flight and are left alone.
    """
    from keystile.services import applications

    cutoff = _now() - older_than
    settled = 0
    async with runtime.unit(SYSTEM) as ctx:
        stmt = (
            select(Application)
            .where(Application.status == "provisioning", Application.created_at < cutoff)
            .with_for_update(skip_locked=True)
        )
        for app in list((await ctx.session.execute(stmt)).scalars()):
            if app.dcr_provider_id is not None:
                if app.reference_id:
                    enqueue_deregister(ctx, app.dcr_provider_id, applications.client_ref(ctx, app))
                else:
                    enqueue(ctx, operation="sweep", provider_id=app.dcr_provider_id, application_id=app.id)
            await ctx.session.execute(delete(Credential).where(Credential.application_id == app.id))
            await ctx.session.delete(app)
            audit.record(
                ctx,
                "application.settle",
                "application",
                app.id,
                status_code=204,
                changes={"status": {"from": "provisioning", "to": None}},
            )
            settled += 1
        await ctx.session.commit()
    return settled


class Runner:
    """The background task of one control-plane process: the start-up sweep, then due entries, forever."""

    def __init__(self, runtime: Runtime, *, interval: float = 1.0) -> None:
        self.runtime = runtime
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.passes = 0  # completed passes (the start-up sweep and each round of due entries)

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self.runtime.extras["outbox"] = self
        self._task = asyncio.create_task(self._loop(), name="keystile-outbox")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self.runtime.extras.get("outbox") is self:
            del self.runtime.extras["outbox"]

    async def _loop(self) -> None:
        try:
            await sweep_provisioning(self.runtime)
        except Exception:  # a failed sweep must not stop the runner; the next start repeats it
            log.exception("start-up sweep of provisioning applications failed")
        while True:
            try:
                await run_due(self.runtime)
                if self.passes % PURGE_EVERY == 0:
                    await idempotency.purge_expired(self.runtime)
            except Exception:  # one bad pass (database away) must not end the runner; it tries again
                log.exception("outbox pass failed")
            self.passes += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
