"""Who references providers and strategies: the `active` flags and the 409s on delete.

Portal product versions, portals and applications arrive with the portal issue; each adds its
reference query here, so `active` and the delete guards stay in one place.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from keystile.services.context import Ctx
from keystile.store.models import AuthStrategy

__all__ = ["active_provider_ids", "active_strategy_ids", "strategy_application_count", "strategy_referrers"]


async def active_strategy_ids(ctx: Ctx) -> set[uuid.UUID]:
    """Strategies attached to a portal product version (none can be before portals exist)."""
    return set()


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
    return []


async def strategy_application_count(ctx: Ctx, strategy_id: uuid.UUID) -> int:
    """Applications created on a strategy."""
    return 0
