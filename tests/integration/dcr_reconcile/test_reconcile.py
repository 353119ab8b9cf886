"""`keystile dcr reconcile`: orphans at the IdP and applications whose client is gone, against the Auth0 fake."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import select

from keystile.dcr.types import AppMetadata, StrategyInfo
from keystile.services import reconcile
from keystile.services.context import SYSTEM
from keystile.services.verification import adapter_for
from keystile.store.models import Application, AuditEvent, AuthStrategy, DcrProvider, Developer, Portal
from tests.unit.dcr.fakes.auth0 import ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET, API_AUDIENCE, ISSUER, FakeAuth0


async def test_reconcile_lists_and_deletes_orphans(runtime):
    fake = FakeAuth0()
    runtime.http = httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))
    async with runtime.unit(SYSTEM) as ctx:
        provider = DcrProvider(
            name="auth0",
            display_name="auth0",
            provider_type="auth0",
            issuer=ISSUER,
            dcr_config={"initial_client_id": ADMIN_CLIENT_ID},
        )
        provider.id = uuid.uuid4()
        provider.secrets = {
            "initial_client_secret": ctx.vault.encrypt(
                ADMIN_CLIENT_SECRET, table="dcr_providers", row_id=provider.id, field="initial_client_secret"
            )
        }
        strategy = AuthStrategy(
            name="s",
            display_name="s",
            strategy_type="openid_connect",
            dcr_provider_id=provider.id,
            configs={"issuer": ISSUER, "credential_claim": ["azp"], "auth_methods": ["client_credentials"]},
        )
        ctx.session.add(provider)
        await ctx.session.flush()
        ctx.session.add(strategy)
        portal = (await ctx.session.execute(select(Portal))).scalars().first()
        if portal is None:
            portal = Portal(name="default", display_name="default")
            ctx.session.add(portal)
        await ctx.session.flush()
        dev = Developer(portal_id=portal.id, email="d@example.com", full_name="D", status="approved")
        ctx.session.add(dev)
        await ctx.session.flush()
        adapter = adapter_for(ctx, provider)
        strategy_info = StrategyInfo(
            auth_methods=("client_credentials",),
            token_post_args_names=("audience",),
            token_post_args_values=(API_AUDIENCE,),
        )
        kept_app = Application(
            portal_id=portal.id,
            developer_id=dev.id,
            auth_strategy_id=strategy.id,
            dcr_provider_id=provider.id,
            name="kept",
            status="active",
        )
        gone_app = Application(
            portal_id=portal.id,
            developer_id=dev.id,
            auth_strategy_id=strategy.id,
            dcr_provider_id=provider.id,
            name="gone",
            status="active",
            reference_id="missing-client",
        )
        ctx.session.add_all([kept_app, gone_app])
        await ctx.session.flush()
        issued = []
        for app_id in (kept_app.id, uuid.uuid4()):
            meta = AppMetadata(
                application_id=app_id,
                name="app",
                dcr_provider_id=str(provider.id),
                strategy=strategy_info,
                created_at=datetime.now(UTC),
            )
            issued.append(await adapter.register(meta))
        kept_app.reference_id = issued[0].client_id
        await ctx.session.commit()

        report = await reconcile.reconcile(ctx, provider.id)
        assert [o.client_id for o in report.orphans] == [issued[1].client_id]
        assert report.missing == [(gone_app.id, "missing-client")]
        assert report.deleted == []

        report = await reconcile.reconcile(ctx, provider.id, delete=True)
        assert report.deleted == [issued[1].client_id]
        assert issued[1].client_id not in fake.clients
        assert issued[0].client_id in fake.clients
        events = (
            (await ctx.session.execute(select(AuditEvent).where(AuditEvent.action == "dcr_provider.reconcile_delete")))
            .scalars()
            .all()
        )
        assert [e.changes["client_id"]["from"] for e in events] == [issued[1].client_id]
    assert fake.problems == []
