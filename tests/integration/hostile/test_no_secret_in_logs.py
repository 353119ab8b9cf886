"""No secret in the logs: every log record (DEBUG and up, every logger including httpx/httpcore, formatted
with keystile's JSON formatter so extras and tracebacks count) written during a whole provider → verify → strategy
→ verify → application → refresh-token → delete flow against the real oidc-provider peer is searched for every
secret the flow handled, in the plain, base64 (Basic) and form-encoded shapes a careless log line would carry."""

from __future__ import annotations

import base64
import logging
from urllib.parse import quote, quote_plus

import pytest

from keystile.dcr import base as dcr_base
from keystile.logs import JsonFormatter
from keystile.services import applications
from keystile.services.context import Actor
from tests.integration.outbox.world import app_rows, make_world, peer_provider

pytestmark = pytest.mark.node


def _shapes(secret: str, client_id: str | None = None) -> set[str]:
    shapes = {secret, quote(secret, safe=""), quote_plus(secret)}
    if client_id is not None:
        pair = f"{client_id}:{secret}"
        shapes |= {base64.b64encode(pair.encode()).decode(), base64.b64encode(pair.encode()).decode().rstrip("=")}
    return {s for s in shapes if len(s) >= 8}


async def test_no_secret_reaches_the_logs_during_a_whole_flow(api, oidc_peer, caplog, monkeypatch) -> None:
    # Stricter than production: keystile keeps httpx/httpcore at WARNING (their INFO lines carry URLs); here they
    # log at DEBUG too, so a secret in a URL, a query or a header that they print would be caught as well.
    monkeypatch.setattr(dcr_base, "quiet_http_loggers", lambda: None)
    for name in (None, "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    world = await make_world(api.runtime, api.client, provider=peer_provider(oidc_peer))
    verified = await api.client.post(
        f"/v2/dcr-providers/{world.provider_id}/verify", params={"trial_registration": "true"}
    )
    assert verified.status_code == 200 and verified.json()["status"] == "success", verified.text
    strategy_verify = await api.client.post(f"/v2/application-auth-strategies/{world.strategy_id}/verify")
    assert strategy_verify.status_code == 200, strategy_verify.text

    created = await api.client.post(
        "/api/v2/applications", json={"name": "log-watch", "description": "d"}, headers=world.as_dev()
    )
    assert created.status_code == 201, created.text
    app = created.json()
    client_id, first_secret = app["credentials"]["client_id"], app["credentials"]["client_secret"]
    [row] = await app_rows(api.runtime)
    async with api.runtime.unit(Actor("developer", str(world.dev.developer_id), "Jane Dev")) as ctx:
        ref = applications.client_ref(ctx, row)
    handles = {k: v.get_secret_value() for k, v in ref.secret_handles.items()}
    rat = handles["registration_access_token"]

    refreshed = await api.client.post(f"/api/v2/applications/{app['id']}/refresh-token", headers=world.as_dev())
    assert refreshed.status_code == 201, refreshed.text
    second_secret = refreshed.json()["client_secret"]
    assert second_secret != first_secret
    bad = await api.client.get("/v2/dcr-providers", headers={"Authorization": "Bearer not-the-admin-token-1234"})
    assert bad.status_code == 401
    gone = await api.client.delete(f"/api/v2/applications/{app['id']}", headers=world.as_dev())
    assert gone.status_code == 204

    secrets = (
        _shapes(first_secret, client_id)
        | _shapes(second_secret, client_id)
        | _shapes(rat)
        | _shapes(oidc_peer.rotating_iat)
        | _shapes(api.token)
        | _shapes(world.dev.access_token)
        | _shapes(world.dev.refresh_token)
        | _shapes(world.other.access_token)
        | _shapes("not-the-admin-token-1234")
    )
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert len(lines) > 10, "the flow should have logged something (IdP requests at least)"
    assert any(oidc_peer.issuer.split("//", 1)[1] in line for line in lines)  # the IdP calls were captured
    for line in lines:
        for secret in secrets:
            assert secret not in line, f"a secret is logged: {line[:300]}"
