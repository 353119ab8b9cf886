"""Catalog and application rows written straight through the store, for Portal API tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from keystile.services.context import Runtime
from keystile.store.models import (
    ApiProduct,
    Application,
    AuthStrategy,
    DcrProvider,
    PortalProductVersion,
    ProductPortal,
    ProductVersion,
    Registration,
    Specification,
)
from keystile.store.types import utcnow

SPEC_YAML = """\
openapi: 3.0.3
info: {title: Billing, version: "1"}
paths:
  /invoices:
    get:
      operationId: listInvoices
      summary: List invoices
      tags: [invoices]
      responses: {"200": {description: ok}}
    post:
      operationId: createInvoice
      deprecated: true
      responses: {"201": {description: created}}
  /invoices/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    delete:
      responses: {"204": {description: gone}}
"""


@dataclass
class Catalog:
    product_id: uuid.UUID
    version_id: uuid.UUID
    unpublished_version_id: uuid.UUID
    hidden_product_id: uuid.UUID
    bare_version_id: uuid.UUID  # published, no spec, no strategy
    strategy_id: uuid.UUID
    key_strategy_id: uuid.UUID
    provider_id: uuid.UUID
    extra: dict[str, uuid.UUID] = field(default_factory=dict)


async def seed_catalog(runtime: Runtime, portal_id: uuid.UUID) -> Catalog:
    """A product listed in the portal with a published v1 (spec, DCR strategy), a published v3 (nothing
    attached) and an unpublished v2; a second product not listed in the portal."""
    async with runtime.sessions() as s:
        provider = DcrProvider(
            id=uuid.uuid4(),
            name="Okta",
            display_name="Okta",
            provider_type="okta",
            issuer="https://example.okta.com/oauth2/default",
            dcr_config={},
        )
        s.add(provider)
        await s.flush()  # no ORM relationships: insert order is ours
        strategy = AuthStrategy(
            id=uuid.uuid4(),
            name="okta-cc",
            display_name="Okta machine access",
            strategy_type="openid_connect",
            configs={
                "issuer": "https://example.okta.com/oauth2/default",
                "auth_methods": ["client_credentials", "bearer"],
                "scopes": ["openid"],
                "credential_claim": ["client_id"],
            },
            dcr_provider_id=provider.id,
        )
        key_strategy = AuthStrategy(
            id=uuid.uuid4(),
            name="keys",
            display_name="API key",
            strategy_type="key_auth",
            configs={"key_names": ["apikey"]},
        )
        product = ApiProduct(id=uuid.uuid4(), name="Billing", description="Invoices", public_labels={"team": "fin"})
        hidden = ApiProduct(id=uuid.uuid4(), name="Internal", description=None)
        s.add_all([strategy, key_strategy, product, hidden])
        await s.flush()
        now = utcnow()
        v1 = ProductVersion(
            id=uuid.uuid4(),
            product_id=product.id,
            name="v1",
            created_at=now - timedelta(days=3),
            gateway_service={"upstream_url": "http://upstream.test", "paths": ["/billing/v1", "/invoices/v1"]},
        )
        v2 = ProductVersion(id=uuid.uuid4(), product_id=product.id, name="v2", created_at=now - timedelta(days=2))
        v3 = ProductVersion(id=uuid.uuid4(), product_id=product.id, name="v3", created_at=now - timedelta(days=1))
        hv = ProductVersion(id=uuid.uuid4(), product_id=hidden.id, name="v1")
        s.add_all([v1, v2, v3, hv])
        await s.flush()
        s.add(ProductPortal(product_id=product.id, portal_id=portal_id))
        s.add_all(
            [
                PortalProductVersion(
                    portal_id=portal_id,
                    product_version_id=v1.id,
                    publish_status="published",
                    application_registration_enabled=True,
                    auth_strategy_id=strategy.id,
                    deprecated=True,
                ),
                PortalProductVersion(portal_id=portal_id, product_version_id=v2.id, publish_status="unpublished"),
                PortalProductVersion(portal_id=portal_id, product_version_id=v3.id, publish_status="published"),
                # published in the portal, but the product does not list the portal
                PortalProductVersion(portal_id=portal_id, product_version_id=hv.id, publish_status="published"),
                Specification(product_version_id=v1.id, name="billing.yaml", content=SPEC_YAML),
            ]
        )
        await s.commit()
        return Catalog(product.id, v1.id, v2.id, hidden.id, v3.id, strategy.id, key_strategy.id, provider.id)


async def seed_application(
    runtime: Runtime,
    portal_id: uuid.UUID,
    developer_id: uuid.UUID,
    strategy_id: uuid.UUID,
    registrations: dict[uuid.UUID, str],
    name: str = "app",
) -> uuid.UUID:
    """A key-auth (non-DCR) application with registrations {product version id: status}."""
    async with runtime.sessions() as s:
        app = Application(
            id=uuid.uuid4(),
            portal_id=portal_id,
            developer_id=developer_id,
            auth_strategy_id=strategy_id,
            name=name,
            status="active",
        )
        s.add(app)
        await s.flush()
        for version_id, status in registrations.items():
            s.add(
                Registration(application_id=app.id, product_version_id=version_id, portal_id=portal_id, status=status)
            )
        await s.commit()
        return app.id
