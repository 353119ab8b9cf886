"""The snapshot's content for a small seeded catalog (gateway.md §3)."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime

from keystile.domain.snapshot import parse_snapshot
from keystile.services.context import SYSTEM
from keystile.store.models import Application, AuthStrategy, Credential, Developer, Registration
from tests.integration.catalog.helpers import (
    default_portal,
    key_auth_strategy,
    oidc_strategy,
    product,
    publish,
    service,
)
from tests.integration.catalog.helpers import version as make_version
from tests.integration.dataplane.test_feed import feed_headers


async def _snapshot(api) -> dict:
    r = await api.client.post("/v2/data-plane/tokens", json={"name": f"gw-{uuid.uuid4().hex[:6]}"})
    token = r.json()["token"]
    r = await api.client.get("/v2/data-plane/config", headers=feed_headers(token))
    assert r.status_code == 200, r.text
    parse_snapshot(r.content)  # the gateway's own schema accepts it
    return json.loads(r.content)


async def _seed_apps(api, portal_id: str, oidc_id: str, keys_id: str, unused_id: str, v1: str, v2: str):
    ids: dict[str, uuid.UUID] = {}
    not_before = datetime(2026, 11, 28, 9, 58, tzinfo=UTC)
    async with api.runtime.unit(SYSTEM) as ctx:
        dev = Developer(portal_id=uuid.UUID(portal_id), email="jane@example.com", full_name="Jane", status="approved")
        ctx.session.add(dev)
        await ctx.session.flush()
        ids["developer"] = dev.id

        def app(name: str, strategy: str, status: str = "active", reference: str | None = None, **kw) -> Application:
            row = Application(
                id=uuid.uuid4(),
                portal_id=uuid.UUID(portal_id),
                developer_id=dev.id,
                auth_strategy_id=uuid.UUID(strategy),
                name=name,
                status=status,
                reference_id=reference,
                **kw,
            )
            ctx.session.add(row)
            ids[name] = row.id
            return row

        app("billing-sync", oidc_id, reference="0oa1b2c3d4", credentials_not_before=not_before)
        app("half-made", oidc_id, status="provisioning", reference="0oa-pending")
        ci = app("ci", keys_id)
        app("elsewhere", unused_id, reference="0oa-unused")
        await ctx.session.flush()
        live_key = Credential(
            id=uuid.uuid4(),
            application_id=ci.id,
            type="api_key",
            key_sha256=hashlib.sha256(b"live-key").hexdigest(),
            expires_at=datetime(2027, 3, 1, tzinfo=UTC),
        )
        dead_key = Credential(
            id=uuid.uuid4(),
            application_id=ci.id,
            type="api_key",
            key_sha256=hashlib.sha256(b"dead-key").hexdigest(),
            status="revoked",
            revoked_at=datetime(2026, 11, 1, tzinfo=UTC),
        )
        ctx.session.add_all([live_key, dead_key])
        ids["live_key"] = live_key.id
        for app_name, vid, status in (
            ("billing-sync", v1, "approved"),
            ("ci", v1, "pending"),
            ("ci", v2, "approved"),
            ("half-made", v1, "approved"),
        ):
            ctx.session.add(
                Registration(
                    application_id=ids[app_name],
                    product_version_id=uuid.UUID(vid),
                    portal_id=uuid.UUID(portal_id),
                    status=status,
                )
            )
        await ctx.session.commit()
    return ids


async def test_snapshot_of_a_small_catalog(api):
    portal = await default_portal(api.client)
    oidc = await oidc_strategy(
        api.client,
        "okta",
        credential_claim=["cid", "client_id"],
        scopes=["billing:read"],
        auth_methods=["client_credentials", "bearer", "session"],
        token_post_args_names=["audience"],
        token_post_args_values=["https://api.example.com"],
        session_cookie_name="sess",
    )
    keys = await key_auth_strategy(api.client, "keys")
    unused = await key_auth_strategy(api.client, "unused")
    billing = await product(api.client, "Billing")
    v1 = await make_version(
        api.client, billing["id"], "v1", gateway_service=service("/billing/v1", methods=["GET", "POST"])
    )
    v2 = await make_version(
        api.client,
        billing["id"],
        "v2",
        gateway_service=service("/billing/v2", strip_path=False, read_timeout_ms=1000, allow_anonymous=True),
    )
    docs_only = await make_version(api.client, billing["id"], "docs")
    await publish(api.client, portal["id"], v1["id"], oidc["id"])
    await publish(api.client, portal["id"], v2["id"], keys["id"], publish_status="unpublished")
    await publish(api.client, portal["id"], docs_only["id"], unused["id"])
    second = await api.client.post("/v2/portals", json={"name": "partners"})
    await publish(api.client, second.json()["id"], v1["id"], keys["id"])
    ids = await _seed_apps(api, portal["id"], oidc["id"], keys["id"], unused["id"], v1["id"], v2["id"])

    snap = await _snapshot(api)

    assert snap["format_version"] == 1
    assert isinstance(snap["version"], int) and snap["generated_at"].endswith("Z")
    assert len(base64.b64decode(snap["shared_cache_key"])) == 32
    assert snap["routes"] == [
        {
            "product_version_id": v1["id"],
            "product_id": billing["id"],
            "paths": ["/billing/v1"],
            "methods": ["GET", "POST"],
            "strip_path": True,
            "upstream_url": "http://billing.internal:8080/api",
            "connect_timeout_ms": 5000,
            "read_timeout_ms": 60000,
            "auth_strategy_ids": [oidc["id"], keys["id"]],
            "allow_anonymous": False,
        },
        {
            "product_version_id": v2["id"],
            "product_id": billing["id"],
            "paths": ["/billing/v2"],
            "methods": None,
            "strip_path": False,
            "upstream_url": "http://billing.internal:8080/api",
            "connect_timeout_ms": 5000,
            "read_timeout_ms": 1000,
            "auth_strategy_ids": [keys["id"]],
            "allow_anonymous": True,
        },
    ]
    oidc_entry, keys_entry = snap["strategies"]
    secret = oidc_entry["settings"].pop("session_secret")
    assert len(base64.b64decode(secret)) == 32
    assert oidc_entry == {
        "id": oidc["id"],
        "strategy_type": "openid_connect",
        "issuer": "https://idp.example.com/oauth2/default",
        "discovery_url": "https://idp.example.com/oauth2/default/.well-known/openid-configuration",
        "credential_claim": ["cid", "client_id"],
        "scopes": ["billing:read"],
        "auth_methods": ["client_credentials", "bearer", "session"],
        "settings": {
            "cache_tokens": True,
            "token_post_args": {"audience": "https://api.example.com"},
            "audience": [],
            "scopes_required": [],
            "session_cookie_name": "sess",
            "session_absolute_timeout": 3600,
            "introspection_client_id": None,
            "introspection_client_secret": None,
        },
    }
    assert keys_entry == {"id": keys["id"], "strategy_type": "key_auth", "key_names": ["apikey"]}
    apps = sorted(snap["applications"], key=lambda a: a["name"])
    assert apps == [
        {
            "id": str(ids["billing-sync"]),
            "name": "billing-sync",
            "developer_id": str(ids["developer"]),
            "portal_id": portal["id"],
            "auth_strategy_id": oidc["id"],
            "credentials_not_before": "2026-11-28T09:58:00.000Z",
            "credentials": [{"type": "client_id", "id": "0oa1b2c3d4", "value": "0oa1b2c3d4"}],
        },
        {
            "id": str(ids["ci"]),
            "name": "ci",
            "developer_id": str(ids["developer"]),
            "portal_id": portal["id"],
            "auth_strategy_id": keys["id"],
            "credentials_not_before": None,
            "credentials": [
                {
                    "type": "api_key_sha256",
                    "id": str(ids["live_key"]),
                    "value": hashlib.sha256(b"live-key").hexdigest(),
                    "expires_at": "2027-03-01T00:00:00.000Z",
                }
            ],
        },
    ]
    assert snap["registrations"] == {str(ids["billing-sync"]): [v1["id"]], str(ids["ci"]): [v2["id"]]}

    # the generated session secret is stored encrypted and stays the same in later snapshots
    async with api.runtime.unit(SYSTEM) as ctx:
        row = await ctx.session.get(AuthStrategy, uuid.UUID(oidc["id"]))
        assert "session_secret" in row.secrets and secret not in json.dumps(row.secrets)
    r = await api.client.patch(f"/v2/portals/{portal['id']}/product-versions/{v2['id']}", json={"deprecated": True})
    assert r.status_code == 200
    again = await _snapshot(api)
    assert again["version"] > snap["version"]
    assert again["strategies"][0]["settings"]["session_secret"] == secret
    # a configured session secret wins, and is never shown by the admin API
    r = await api.client.patch(
        f"/v2/application-auth-strategies/{oidc['id']}",
        json={"configs": {"openid-connect": {"session_secret": "configured-secret-0123456789"}}},
    )
    assert r.status_code == 200 and "configured-secret" not in r.text
    await api.client.patch(f"/v2/portals/{portal['id']}/product-versions/{v2['id']}", json={"deprecated": False})
    third = await _snapshot(api)
    assert third["strategies"][0]["settings"]["session_secret"] == "configured-secret-0123456789"
