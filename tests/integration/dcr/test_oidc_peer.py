"""The oidc-provider peer itself answers as contract §4.1 says (guards the fixture the adapter tests rely on)."""

from __future__ import annotations

import os

import httpx
import pytest

pytestmark = pytest.mark.node


async def test_peer_announces_registration_and_its_issuer(oidc_peer):
    async with httpx.AsyncClient() as client:
        response = await client.get(oidc_peer.discovery_url)
    document = response.json()
    assert response.status_code == 200
    assert document["issuer"] == oidc_peer.issuer
    assert document["registration_endpoint"] == f"{oidc_peer.issuer}/reg"
    assert "client_credentials" in document["grant_types_supported"]
    assert oidc_peer.issuer.startswith("http://127.0.0.1:")
    os.kill(oidc_peer.pid, 0)  # the process is alive and known by its pid


async def test_admin_dcr_token_is_opaque_and_scoped(oidc_peer):
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{oidc_peer.issuer}/token",
            data={"grant_type": "client_credentials", "scope": "dcr"},
            auth=(oidc_peer.admin_client_id, oidc_peer.admin_client_secret),
        )
        api = await client.post(
            f"{oidc_peer.issuer}/token",
            data={"grant_type": "client_credentials", "resource": "https://elsewhere.test"},
            auth=(oidc_peer.admin_client_id, oidc_peer.admin_client_secret),
        )
    body = response.json()
    assert response.status_code == 200
    assert body["scope"] == "dcr"
    assert body["access_token"].count(".") == 0
    assert api.status_code == 400
    assert api.json()["error"] == "invalid_target"
