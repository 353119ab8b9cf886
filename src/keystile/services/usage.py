"""Who references providers and strategies: the `active` flags and the 409s on delete.

A strategy is active when a portal product version offers it; it is referenced by portal product versions,
portal defaults and applications. Every reference query lives here, so `active` and the delete guards agree.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from keystile.services.context import Ctx
from keystile.store.models import (
    ApiProduct,
    Application,
    AuthStrategy,
    Portal,
    PortalProductVersion,
    ProductVersion,
)

__all__ = ["active_provider_ids", "active_strategy_ids", "strategy_application_count", "strategy_referrers"]


async def active_strategy_ids(ctx: Ctx) -> set[uuid.UUID]:
    """Strategies attached to any portal product version."""
    rows = await ctx.session.execute(
        select(PortalProductVersion.auth_strategy_id)
        .where(PortalProductVersion.auth_strategy_id.isnot(None))
        .distinct()
    )
    return {r[0] for r in rows if r[0] is not None}


async def active_provider_ids(ctx: Ctx) -> set[uuid.UUID]:
    """Providers whose strategies are active."""
    strategies = await active_strategy_ids(ctx)
    if not strategies:
        return set()
    rows = await ctx.session.execute(
        select(AuthStrategy.dcr_provider_id).where(
            AuthStrategy.id.in_(strategies), AuthStrategy.dcr_provider_id.isnot(None)
        )
    )
    return {r[0] for r in rows if r[0] is not None}


async def strategy_referrers(ctx: Ctx, strategy_id: uuid.UUID) -> list[str]:
    """Human-readable names of what references a strategy (portal versions, portal defaults, applications)."""
    out: list[str] = []
    versions = await ctx.session.execute(
        select(Portal.name, ApiProduct.name, ProductVersion.name, PortalProductVersion.id)
        .join(Portal, Portal.id == PortalProductVersion.portal_id)
        .join(ProductVersion, ProductVersion.id == PortalProductVersion.product_version_id)
        .join(ApiProduct, ApiProduct.id == ProductVersion.product_id)
        .where(PortalProductVersion.auth_strategy_id == strategy_id)
        .order_by(PortalProductVersion.created_at, PortalProductVersion.id)
        .limit(20)
    )
    for portal, product, version, ppv_id in versions:
        out.append(f"product version {product!r} {version!r} in portal {portal!r} ({ppv_id})")
    portals = await ctx.session.execute(
        select(Portal.name, Portal.id)
        .where(Portal.default_application_auth_strategy_id == strategy_id)
        .order_by(Portal.created_at, Portal.id)
        .limit(20)
    )
    for name, pid in portals:
        out.append(f"portal {name!r} ({pid}) as its default application auth strategy")
    apps = await ctx.session.execute(
        select(Application.name, Application.id)
        .where(Application.auth_strategy_id == strategy_id)
        .order_by(Application.created_at, Application.id)
        .limit(20)
    )
    for name, aid in apps:
        out.append(f"application {name!r} ({aid})")
    return out


async def strategy_application_count(ctx: Ctx, strategy_id: uuid.UUID) -> int:
    """Applications created on a strategy."""
    stmt = select(func.count()).select_from(Application).where(Application.auth_strategy_id == strategy_id)
    return int((await ctx.session.execute(stmt)).scalar_one())
