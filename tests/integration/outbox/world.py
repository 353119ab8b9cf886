"""A small portal world for application tests: a provider, a strategy offered by the default portal, a product
version published there with registration enabled, and two approved developers with sessions.

Built through the Management API where it exists (providers, strategies) and through the store for the catalog
rows, so these tests depend only on what they exercise.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from keystile.services.context import SYSTEM, Runtime
from keystile.store.models import (
    ApiProduct,
    Application,
    IdpOperation,
    Portal,
    PortalProductVersion,
    ProductPortal,
    ProductVersion,
)
from tests.portal_helpers import PortalDeveloper, approved_developer, ensure_default_portal

__all__ = ["World", "app_rows", "make_world", "operations", "peer_provider", "publish_version"]


@dataclass
class World:
    runtime: Runtime
    client: httpx.AsyncClient
    portal_id: uuid.UUID
    strategy_id: str
    provider_id: str | None
    product_id: uuid.UUID
    version_id: uuid.UUID
    dev: PortalDeveloper
    other: PortalDeveloper

    def as_dev(self, dev: PortalDeveloper | None = None) -> dict[str, str]:
        return (dev or self.dev).bearer


def peer_provider(oidc_peer: Any, *, rotating: bool = True) -> dict[str, Any]:
    """An rfc7591 provider on the oidc-provider peer (rotating IAT, new secret on PUT)."""
    return {
        "name": f"peer-{uuid.uuid4().hex[:8]}",
        "provider_type": "rfc7591",
        "issuer": oidc_peer.issuer,
        "dcr_config": {
            "initial_access_token": oidc_peer.rotating_iat if rotating else oidc_peer.plain_iat,
            "rotates_secret_on_put": rotating,
        },
    }


async def publish_version(
    runtime: Runtime,
    portal_id: uuid.UUID,
    strategy_id: str | None,
    *,
    name: str = "v1",
    auto_approve: bool = False,
) -> tuple[uuid.UUID, uuid.UUID]:
    """A product with one version published in the portal, registration enabled, on `strategy_id`."""
    async with runtime.unit(SYSTEM) as ctx:
        product = ApiProduct(id=uuid.uuid4(), name=f"Billing {uuid.uuid4().hex[:6]}")
        version = ProductVersion(id=uuid.uuid4(), product_id=product.id, name=name)
        ctx.session.add(product)
        await ctx.session.flush()
        ctx.session.add(version)
        ctx.session.add(ProductPortal(product_id=product.id, portal_id=portal_id))
        await ctx.session.flush()
        ctx.session.add(
            PortalProductVersion(
                id=uuid.uuid4(),
                portal_id=portal_id,
                product_version_id=version.id,
                publish_status="published",
                application_registration_enabled=strategy_id is not None,
                auto_approve_registration=auto_approve,
                auth_strategy_id=uuid.UUID(strategy_id) if strategy_id else None,
            )
        )
        await ctx.session.commit()
        return product.id, version.id


async def make_world(
    runtime: Runtime,
    client: httpx.AsyncClient,
    *,
    provider: dict[str, Any] | None,
    strategy: dict[str, Any] | None = None,
    auto_approve: bool = False,
) -> World:
    """Create the provider (when given) and the strategy over the Management API; publish a version; sign up two
    developers. The strategy is the portal's default."""
    portal_id = await ensure_default_portal(runtime, auto_approve_applications=False)
    provider_id: str | None = None
    if provider is not None:
        r = await client.post("/v2/dcr-providers", json=provider)
        assert r.status_code == 201, r.text
        provider_id = r.json()["id"]
    if strategy is None:
        strategy = {
            "name": "peer strategy",
            "display_name": "Peer",
            "strategy_type": "openid_connect",
            "configs": {
                "openid-connect": {
                    "issuer": provider["issuer"] if provider else "https://idp.example.com",
                    "credential_claim": ["client_id"],
                    "scopes": ["read"],
                    "auth_methods": ["client_credentials", "bearer"],
                }
            },
        }
    body = dict(strategy)
    if provider_id is not None and body.get("strategy_type") == "openid_connect":
        body["dcr_provider_id"] = provider_id
    r = await client.post("/v2/application-auth-strategies", json=body)
    assert r.status_code == 201, r.text
    strategy_id = r.json()["id"]
    async with runtime.unit(SYSTEM) as ctx:
        portal = await ctx.session.get(Portal, portal_id)
        assert portal is not None
        portal.default_application_auth_strategy_id = uuid.UUID(strategy_id)
        await ctx.session.commit()
    product_id, version_id = await publish_version(runtime, portal_id, strategy_id, auto_approve=auto_approve)
    dev = await approved_developer(runtime, full_name="Jane Dev")
    other = await approved_developer(runtime, full_name="Mallory Dev")
    return World(runtime, client, portal_id, strategy_id, provider_id, product_id, version_id, dev, other)


async def app_rows(runtime: Runtime) -> list[Application]:
    async with runtime.sessions() as session:
        return list((await session.execute(select(Application))).scalars())


async def operations(runtime: Runtime) -> list[IdpOperation]:
    async with runtime.sessions() as session:
        return list((await session.execute(select(IdpOperation).order_by(IdpOperation.created_at))).scalars())
