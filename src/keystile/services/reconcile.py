"""Reconcile a provider's IdP clients with keystile's applications (dcr-providers.md §3.3).

Lists the clients at the IdP that carry keystile's tag but match no application in `provisioning`, `active` or
`deleting` (orphans), and applications whose client is missing at the IdP. With `delete=True` it deregisters
orphans older than ten minutes (never racing a create in flight), one audit event each.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from keystile.dcr.types import ClientRef, IdpClient
from keystile.domain.errors import ConflictError, ProviderError
from keystile.services import audit, providers
from keystile.services.context import Ctx
from keystile.services.verification import adapter_for
from keystile.store.models import Application

__all__ = ["ReconcileReport", "reconcile"]

MIN_ORPHAN_AGE = timedelta(minutes=10)
LIVE_STATES = ("provisioning", "active", "deleting")


@dataclass
class ReconcileReport:
    provider_id: uuid.UUID
    orphans: list[IdpClient] = field(default_factory=list)
    missing: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # (application id, client id)
    deleted: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (client id, why it was not deleted)


async def reconcile(
    ctx: Ctx, provider_id: uuid.UUID, *, delete: bool = False, now: datetime | None = None
) -> ReconcileReport:
    """Compare the IdP's tagged clients with keystile's applications of this provider.

    Raises:
        NotFoundError: no such provider.
        ConflictError: the provider type cannot list clients.
        ProviderError: the IdP failed while listing.
    """
    row = await providers.get_row(ctx, provider_id)
    adapter = adapter_for(ctx, row)
    if not adapter.capabilities.list_clients:
        raise ConflictError(f"this IdP cannot list clients (provider type {row.provider_type})")
    apps = (
        await ctx.session.execute(
            select(Application.id, Application.reference_id, Application.status).where(
                Application.dcr_provider_id == row.id, Application.status.in_(LIVE_STATES)
            )
        )
    ).all()
    known = {ref for _, ref, _ in apps if ref}
    all_app_ids = {
        str(r[0])
        for r in await ctx.session.execute(select(Application.id).where(Application.dcr_provider_id == row.id))
    }
    report = ReconcileReport(row.id)
    listed: set[str] = set()
    async for client in adapter.list_clients():
        listed.add(client.client_id)
        if client.client_id not in known:
            report.orphans.append(client)
    report.missing = [(app_id, ref) for app_id, ref, status in apps if ref and status == "active" and ref not in listed]
    if not delete:
        return report
    moment = now or datetime.now(UTC)
    for orphan in report.orphans:
        # Never race a create in flight: its application row exists (as `provisioning`) before the IdP is called.
        # A client is safe to delete when it is old enough, or when it is tagged with an application id that has
        # no row at all (the create failed and its row was removed, or the application is long gone).
        old_enough = orphan.created_at is not None and moment - orphan.created_at >= MIN_ORPHAN_AGE
        rowless = orphan.application_id is not None and orphan.application_id not in all_app_ids
        if not (old_enough or rowless):
            report.kept.append(
                (orphan.client_id, "younger than 10 minutes (or of unknown age) and its application exists")
            )
            continue
        app_id = uuid.UUID(orphan.application_id) if _is_uuid(orphan.application_id) else uuid.uuid4()
        try:
            await adapter.deregister(
                ClientRef(client_id=orphan.client_id, application_id=app_id, created_at=orphan.created_at)
            )
        except ProviderError as exc:
            report.kept.append((orphan.client_id, str(exc)))
            continue
        report.deleted.append(orphan.client_id)
        audit.record(
            ctx,
            "dcr_provider.reconcile_delete",
            "dcr_provider",
            row.id,
            status_code=204,
            changes={
                "client_id": {"from": orphan.client_id, "to": None},
                "tagged_application_id": {"from": orphan.application_id, "to": None},
            },
        )
        await ctx.session.commit()
    return report


def _is_uuid(value: str | None) -> bool:
    if not value:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
