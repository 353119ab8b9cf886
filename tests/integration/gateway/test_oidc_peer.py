"""The gateway against the real oidc-provider peer (tests/idp): a DCR-registered client's credentials exchanged,
the JWT it gets verified as a bearer token, and a wrong secret refused."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.oidc_peer import OidcPeer
from tests.integration.gateway.conftest import PV_A, World, basic
from tests.integration.gateway.servers import IdpClientReg, header

pytestmark = pytest.mark.node


async def _register(peer: OidcPeer) -> IdpClientReg:
    async with httpx.AsyncClient(timeout=10) as client:
        meta = (await client.get(peer.discovery_url)).json()
        response = await client.post(
            meta["registration_endpoint"],
            headers={"Authorization": f"Bearer {peer.plain_iat}"},
            json={
                "client_name": "gateway-test",
                "grant_types": ["client_credentials"],
                "response_types": [],
                "redirect_uris": [],
                "token_endpoint_auth_method": "client_secret_basic",
                "scope": "read write",
            },
        )
    assert response.status_code == 201, response.text
    body = response.json()
    return IdpClientReg(body["client_id"], body["client_secret"])


async def test_real_client_through_the_gateway(oidc_peer: OidcPeer, upstream, start_gateway) -> None:
    reg = await _register(oidc_peer)
    world = World(upstream=upstream.url, issuer=oidc_peer.issuer)
    world.auth_methods = ["client_credentials", "bearer"]
    world.oidc_settings = {"token_post_args": {}, "audience": [oidc_peer.api_audience], "scopes_required": ["read"]}
    world.oidc_app("app-peer", reg.client_id, [PV_A])
    snapshot = world.build()
    snapshot["strategies"][0]["scopes"] = ["openid", "read"]
    gw = await start_gateway(snapshot)
    for encoded in (True, False):
        response = await gw.client.get("/a/orders", headers={"Authorization": basic(reg, encoded=encoded)})
        assert response.status_code == 200, response.text
        (authz,) = header(response.json(), "Authorization")
        assert authz.startswith("Bearer ey")
        assert header(response.json(), "X-Application-ID") == ["app-peer"]
    # the access token the peer issued is a JWT the gateway verifies against the peer's JWKS
    bearer = await gw.client.get("/a/orders", headers={"Authorization": authz})
    assert bearer.status_code == 200, bearer.text
    assert header(bearer.json(), "X-Credential-Identifier") == [reg.client_id]
    wrong = await gw.client.get("/a/orders", headers={"Authorization": basic(reg, secret="not-the-secret")})
    assert wrong.status_code == 401
    assert (await gw.idp_calls()).get("token") == 2  # one exchange per secret, then the cache
