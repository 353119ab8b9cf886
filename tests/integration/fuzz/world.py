"""A seeded keystile for the fuzz tests: an in-process app on a SQLite file of its own, with one row of every
kind the two APIs address by id, created through the APIs themselves (the admin token for `/v2`, the signed-in
developer for `/api/v2`), so the fuzzed operations reach real rows and not only 404s."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from argon2 import PasswordHasher
from sqlalchemy.pool import NullPool

from keystile.app import create_app
from keystile.services import admin_tokens, installation, outbox
from keystile.services.context import SYSTEM, Runtime
from keystile.settings import Settings
from keystile.store import migrate
from keystile.store.db import create_engine, session_factory
from keystile.store.vault import Vault
from tests.portal_helpers import approved_developer, ensure_default_portal

SPEC = """\
openapi: 3.0.3
info: {title: Billing, version: "1"}
paths:
  /invoices:
    get:
      operationId: listInvoices
      responses: {"200": {description: ok}}
"""
DEVELOPER_PASSWORD = "correct horse battery staple"


@dataclass
class World:
    app: Any
    runtime: Runtime
    admin_token: str
    developer_token: str
    developer_refresh_token: str
    developer_email: str
    data_plane_token: str
    ids: dict[str, str] = field(default_factory=dict)


async def _json(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    body: dict[str, Any] = response.json()
    return body


async def _seed(rt: Runtime, app: Any, idp_issuer: str | None, idp_token: str | None) -> World:
    await migrate.upgrade(rt.engine)
    await installation.ensure(rt)
    portal_id = await ensure_default_portal(rt)
    admin_token = (await admin_tokens.create(rt, "fuzz"))[1]
    dev = await approved_developer(rt, portal_id=portal_id, password=DEVELOPER_PASSWORD)
    ids: dict[str, str] = {"portalId": str(portal_id), "developerId": str(dev.developer_id)}
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"Authorization": f"Bearer {admin_token}"}
        ) as admin,
        httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=dev.bearer) as developer,
    ):
        scratch = await _json(
            await admin.post(
                "/v2/dcr-providers",
                json={
                    "name": "scratch",
                    "provider_type": "okta",
                    "issuer": "https://x.example.com",
                    "dcr_config": {"dcr_token": "t0ken"},
                },
            )
        )
        ids["dcrProviderId"] = scratch["id"]
        if idp_issuer is not None:
            # verify makes real round-trips: it gets a provider and a strategy on a live IdP of its own
            live = await _json(
                await admin.post(
                    "/v2/dcr-providers",
                    json={
                        "name": "live",
                        "provider_type": "rfc7591",
                        "issuer": idp_issuer,
                        "dcr_config": {"initial_access_token": idp_token, "rotates_secret_on_put": True},
                    },
                )
            )
            ids["liveProviderId"] = live["id"]
            live_strategy = await _json(
                await admin.post(
                    "/v2/application-auth-strategies",
                    json={
                        "name": "live cc",
                        "display_name": "Live",
                        "strategy_type": "openid_connect",
                        "dcr_provider_id": live["id"],
                        "configs": {
                            "openid-connect": {
                                "issuer": idp_issuer,
                                "credential_claim": ["client_id"],
                                "scopes": ["openid"],
                                "auth_methods": ["client_credentials", "bearer"],
                            }
                        },
                    },
                )
            )
            ids["liveStrategyId"] = live_strategy["id"]
        keys = await _json(
            await admin.post(
                "/v2/application-auth-strategies",
                json={
                    "name": "keys",
                    "display_name": "API key",
                    "strategy_type": "key_auth",
                    "configs": {"key-auth": {}},
                },
            )
        )
        ids["keyStrategyId"] = keys["id"]
        spare = await _json(
            await admin.post(
                "/v2/application-auth-strategies",
                json={
                    "name": "spare",
                    "display_name": "Spare",
                    "strategy_type": "key_auth",
                    "configs": {"key-auth": {}},
                },
            )
        )
        ids["authStrategyId"] = spare["id"]
        product = await _json(await admin.post("/v2/api-products", json={"name": "Billing", "portal_ids": []}))
        ids["apiProductId"] = ids["productId"] = product["id"]
        version = await _json(
            await admin.post(f"/v2/api-products/{product['id']}/product-versions", json={"name": "v1"})
        )
        ids["productVersionId"] = version["id"]
        spec = await _json(
            await admin.post(
                f"/v2/api-products/{product['id']}/product-versions/{version['id']}/specifications",
                json={"name": "billing.yaml", "content": SPEC},
            )
        )
        ids["specificationId"] = spec["id"]
        # a second published version and a second registration: rows of their own for DELETEs that would otherwise
        # find their row already gone (the deeper DELETE on the same row runs first)
        spare_version = await _json(
            await admin.post(f"/v2/api-products/{product['id']}/product-versions", json={"name": "v2"})
        )
        ids["spareVersionId"] = spare_version["id"]
        for published in (version, spare_version):
            await _json(
                await admin.post(
                    f"/v2/portals/{portal_id}/product-versions",
                    json={
                        "product_version_id": published["id"],
                        "publish_status": "published",
                        "application_registration_enabled": True,
                        "auto_approve_registration": False,
                        "deprecated": False,
                        "auth_strategy_ids": [keys["id"]],
                    },
                )
            )
        await _json(await admin.patch(f"/v2/api-products/{product['id']}", json={"portal_ids": [str(portal_id)]}), 200)
        await _json(
            await admin.patch(f"/v2/portals/{portal_id}", json={"default_application_auth_strategy_id": keys["id"]}),
            200,
        )
        application = await _json(await developer.post("/api/v2/applications", json={"name": "fuzzed"}))
        ids["applicationId"] = application["id"]
        credential = await _json(await developer.post(f"/api/v2/applications/{application['id']}/credentials", json={}))
        ids["credentialId"] = credential["id"]
        registration = await _json(
            await developer.post(
                f"/api/v2/applications/{application['id']}/registrations", json={"product_version_id": version["id"]}
            )
        )
        ids["registrationId"] = registration["id"]
        spare_registration = await _json(
            await developer.post(
                f"/api/v2/applications/{application['id']}/registrations",
                json={"product_version_id": spare_version["id"]},
            )
        )
        ids["spareRegistrationId"] = spare_registration["id"]
        token = await _json(await admin.post("/v2/data-plane/tokens", json={"name": "fuzz"}))
        ids["tokenId"] = token["id"]
        data_plane_token = token["token"]
        logs = await _json(await admin.get("/v2/audit-logs"), 200)
        ids["auditLogId"] = logs["data"][0]["id"]
    async with rt.unit(SYSTEM) as ctx:
        failed = outbox.enqueue(
            ctx,
            operation="deregister",
            provider_id=uuid.UUID(ids["dcrProviderId"]),
            application_id=None,
            client_id="gone-client",
            status="failed",
            last_error="the IdP refused",
        )
        await ctx.session.commit()
    ids["operationId"] = str(failed.id)
    return World(app, rt, admin_token, dev.access_token, dev.refresh_token, dev.email, data_plane_token, ids)


def build_world(data: Path, *, idp_issuer: str | None = None, idp_token: str | None = None) -> World:
    """Migrate a fresh SQLite database in `data`, build the app on it and seed one row of every kind."""
    url = f"sqlite+aiosqlite:///{data / 'k.db'}"
    settings = Settings(data_dir=data, database_url=url, mail_outbox=data / "outbox")
    engine = create_engine(url, poolclass=NullPool)
    # schemathesis serves each call from an event loop of its own that is gone afterwards, so a pooled connection
    # (verify talks to a live IdP) would outlive its loop unclosed: no keep-alive, each connection closes with its call
    http = httpx.AsyncClient(timeout=2, limits=httpx.Limits(max_keepalive_connections=0))
    rt = Runtime(settings, engine, session_factory(engine), Vault(bytes(32)), http)
    rt.extras["password_hasher"] = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    app = create_app(settings, runtime=rt)
    return asyncio.run(_seed(rt, app, idp_issuer, idp_token))
