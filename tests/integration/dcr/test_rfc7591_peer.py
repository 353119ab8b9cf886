"""The `rfc7591` adapter against real RFC 7591/7592 servers (contracts/dcr-providers.md §2.6, §2.8, §4.1).

Every test takes `rfc7591_server` (conftest.py), so each runs against every real server keystile is tested with.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import SecretStr

from keystile.dcr.base import TokenCache
from keystile.dcr.registry import build_adapter
from keystile.dcr.rfc7591 import Rfc7591Provider
from keystile.dcr.types import AppMetadata, ClientRef, HookEvent, ProbeResult, StrategyInfo
from keystile.domain.errors import ProviderError
from tests.integration.dcr.conftest import Rfc7591Server

PROVIDER_ID = "5f1c9a3e-0b7d-4e2a-8c6f-9d4b2a1e7c30"


def adapter_for(server: Rfc7591Server, client: httpx.AsyncClient, mode: str, **config: Any) -> Rfc7591Provider:
    """An adapter in one IAT mode: `static`, `rotating` (static IAT of the rotate-on-PUT kind), `minted`, `none`."""
    dcr_config: dict[str, Any] = dict(config)
    if mode == "static":
        dcr_config["initial_access_token"] = server.static_iat
    elif mode == "rotating":
        dcr_config["initial_access_token"] = server.rotating_iat
        dcr_config.setdefault("rotates_secret_on_put", True)
    elif mode == "minted":
        dcr_config.update(
            initial_client_id=server.admin_client_id,
            initial_client_secret=server.admin_client_secret,
            initial_client_scope=server.admin_scope,
        )
    adapter = build_adapter(
        provider_type="rfc7591",
        provider_id=PROVIDER_ID,
        issuer=server.issuer,
        dcr_config=dcr_config,
        client=client,
        token_cache=TokenCache(),
    )
    assert isinstance(adapter, Rfc7591Provider)
    return adapter


def application(name: str = "Orders", redirect_uri: str | None = None, **kwargs: Any) -> AppMetadata:
    return AppMetadata(
        application_id=kwargs.pop("application_id", uuid.uuid4()),
        name=name,
        redirect_uri=redirect_uri,
        scopes=("read", "openid"),
        dcr_provider_id=PROVIDER_ID,
        strategy=StrategyInfo(scopes=("read",)),
        **kwargs,
    )


async def token_endpoint(client: httpx.AsyncClient, server: Rfc7591Server) -> str:
    document = (await client.get(f"{server.issuer}/.well-known/openid-configuration")).json()
    return str(document["token_endpoint"])


async def token_request(
    client: httpx.AsyncClient, server: Rfc7591Server, client_id: str, secret: SecretStr | str, **form: str
) -> httpx.Response:
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return await client.post(
        await token_endpoint(client, server),
        data={"grant_type": "client_credentials", **form},
        auth=(client_id, value),
    )


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def part(segment: str) -> dict[str, Any]:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))

    header, payload, _signature = token.split(".")
    return part(header), part(payload)


async def test_register_then_a_jwt_access_token_by_client_credentials(rfc7591_server, http_client):
    adapter = adapter_for(rfc7591_server, http_client, "static")
    app = application()
    issued = await adapter.register(app)
    assert issued.client_id
    assert issued.secret_handles["registration_client_uri"].get_secret_value().endswith(issued.client_id)
    assert issued.secret_handles["registration_access_token"].get_secret_value()
    # the stored metadata is the response, secrets removed
    assert issued.metadata["client_id"] == issued.client_id
    assert issued.metadata["client_name"].endswith(f"(ks-{app.application_id.hex[-12:]})")
    assert issued.metadata["grant_types"] == ["client_credentials"]
    assert issued.metadata["response_types"] == []
    assert issued.metadata["scope"] == "read"
    assert issued.metadata["token_endpoint_auth_method"] == "client_secret_basic"
    for secret_field in ("client_secret", "registration_access_token", "registration_client_uri"):
        assert secret_field not in issued.metadata
    assert issued.issued_at is not None
    assert issued.expires_at is None

    response = await token_request(http_client, rfc7591_server, issued.client_id, issued.client_secret, scope="read")
    assert response.status_code == 200, response.text
    header, claims = jwt_parts(response.json()["access_token"])
    assert header["alg"] == "RS256"
    assert claims["aud"] == rfc7591_server.api_audience
    assert claims["client_id"] == issued.client_id
    assert claims["cid"] == issued.client_id
    assert claims["iss"] == rfc7591_server.issuer
    assert claims["scope"] == "read"
    assert await adapter.probe(issued.client_id, issued.client_secret, app.strategy) is ProbeResult.OK
    await adapter.deregister(issued.as_ref(app.application_id))


async def test_a_redirect_uri_registers_an_authorization_code_client(rfc7591_server, http_client):
    adapter = adapter_for(rfc7591_server, http_client, "static")
    app = application("Shop", redirect_uri="https://shop.example/callback")
    issued = await adapter.register(app)
    assert issued.metadata["redirect_uris"] == ["https://shop.example/callback"]
    assert issued.metadata["grant_types"] == ["authorization_code", "client_credentials"]
    assert issued.metadata["response_types"] == ["code"]
    await adapter.deregister(issued.as_ref(app.application_id))


class WithoutEmptyResponseTypes(Rfc7591Provider):
    MACHINE_RESPONSE_TYPES: ClassVar[list[str] | None] = None


async def test_without_empty_response_types_the_server_demands_redirect_uris(rfc7591_server, http_client):
    adapter = adapter_for(rfc7591_server, http_client, "static")
    naive = WithoutEmptyResponseTypes(adapter.config, http_client, TokenCache())
    with pytest.raises(ProviderError) as caught:
        await naive.register(application())
    err = caught.value
    assert (err.status, err.code, err.retryable, err.outcome_unknown) == (400, "invalid_redirect_uri", False, False)


async def test_rotation_with_the_rotating_iat_kills_the_old_secret(rfc7591_server, http_client):
    adapter = adapter_for(rfc7591_server, http_client, "rotating")
    assert adapter.capabilities.rotate
    app = application()
    issued = await adapter.register(app)
    ref = issued.as_ref(app.application_id)
    rotated = await adapter.rotate_secret(ref)
    assert rotated.client_secret.get_secret_value() != issued.client_secret.get_secret_value()
    old_rat = issued.secret_handles["registration_access_token"].get_secret_value()
    new_rat = rotated.secret_handles["registration_access_token"].get_secret_value()
    assert new_rat != old_rat  # the RAT of every PUT is stored

    old = await token_request(http_client, rfc7591_server, issued.client_id, issued.client_secret)
    assert old.status_code == 401
    assert old.json()["error"] == "invalid_client"
    new = await token_request(http_client, rfc7591_server, issued.client_id, rotated.client_secret)
    assert new.status_code == 200

    # the old RAT is dead: a first DELETE with it is an error, not "gone"
    with pytest.raises(ProviderError) as caught:
        await adapter.deregister(ref)
    assert (caught.value.status, caught.value.code) == (401, "invalid_token")
    await adapter.deregister(rotated.apply(ref))


async def test_a_rename_is_pushed_as_a_rotation_only_when_redirect_uris_change(rfc7591_server, http_client):
    adapter = adapter_for(rfc7591_server, http_client, "rotating")
    app = application("Orders")
    ref = (await adapter.register(app)).as_ref(app.application_id)
    renamed = application("Orders v2", application_id=app.application_id)
    assert await adapter.on_event(ref, HookEvent("update_application", renamed)) is None
    moved = application("Orders v2", redirect_uri="https://new.example/cb", application_id=app.application_id)
    update = await adapter.on_event(ref, HookEvent("update_application", moved))
    assert update is not None
    assert update.client_secret is not None
    assert update.metadata["redirect_uris"] == ["https://new.example/cb"]
    assert update.metadata["client_name"].startswith("Orders v2 (ks-")
    ref = update.apply(ref)
    ok = await token_request(http_client, rfc7591_server, ref.client_id, update.client_secret)
    assert ok.status_code == 200
    await adapter.deregister(ref)


async def test_without_rotation_a_rename_is_pushed_and_rotation_is_refused(rfc7591_server, http_client):
    adapter = adapter_for(rfc7591_server, http_client, "static")
    assert not adapter.capabilities.rotate
    app = application("Orders")
    issued = await adapter.register(app)
    ref = issued.as_ref(app.application_id)
    with pytest.raises(ProviderError) as caught:
        await adapter.rotate_secret(ref)
    assert caught.value.code == "unsupported_operation"
    renamed = application("Orders v2", application_id=app.application_id)
    update = await adapter.on_event(ref, HookEvent("update_application", renamed))
    assert update is not None
    assert update.client_secret is None
    assert update.metadata["client_name"].startswith("Orders v2 (ks-")
    ref = update.apply(ref)
    assert await adapter.on_event(ref, HookEvent("update_application", renamed)) is None
    still = await token_request(http_client, rfc7591_server, issued.client_id, issued.client_secret)
    assert still.status_code == 200
    await adapter.deregister(ref)


async def test_delete_makes_the_token_endpoint_refuse_the_client(rfc7591_server, http_client):
    adapter = adapter_for(rfc7591_server, http_client, "static")
    app = application()
    issued = await adapter.register(app)
    ref = issued.as_ref(app.application_id)
    uri = issued.secret_handles["registration_client_uri"].get_secret_value()
    rat = issued.secret_handles["registration_access_token"].get_secret_value()
    statuses: list[tuple[str, int]] = []

    async def record(response: httpx.Response) -> None:
        statuses.append((response.request.method, response.status_code))

    http_client.event_hooks["response"].append(record)
    await adapter.deregister(ref)
    assert statuses == [("DELETE", 204)]
    refused = await token_request(http_client, rfc7591_server, issued.client_id, issued.client_secret)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    # a repeated attempt (the outbox after a lost answer) finds the RAT dead: 401 = gone
    again = await http_client.delete(uri, headers={"Authorization": f"Bearer {rat}"})
    assert again.status_code == 401
    await adapter.deregister(ClientRef(**{**ref.__dict__, "handles": {"deregister_attempts": 1}}))


async def test_static_iat_is_reusable(rfc7591_server, http_client):
    adapter = adapter_for(rfc7591_server, http_client, "static")
    apps = [application("A"), application("B")]
    issued = [await adapter.register(a) for a in apps]
    assert issued[0].client_id != issued[1].client_id
    for one, a in zip(issued, apps, strict=True):
        await adapter.deregister(one.as_ref(a.application_id))


async def test_iat_minted_by_client_credentials_is_single_use(rfc7591_server, http_client):
    adapter = adapter_for(rfc7591_server, http_client, "minted")
    app = application()
    issued = await adapter.register(app)
    await adapter.deregister(issued.as_ref(app.application_id))
    # by hand: one admin token registers once; the same token again → 401 invalid_token
    token = await token_request(
        http_client, rfc7591_server, rfc7591_server.admin_client_id, rfc7591_server.admin_client_secret, scope="dcr"
    )
    assert token.status_code == 200
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    endpoint = await adapter.registration_endpoint("register")
    body = adapter.registration_body(application())
    first = await http_client.post(endpoint, json=body, headers=bearer)
    assert first.status_code == 201
    second = await http_client.post(endpoint, json=body, headers=bearer)
    assert second.status_code == 401
    assert second.json()["error"] == "invalid_token"
    created = first.json()
    await http_client.delete(
        created["registration_client_uri"], headers={"Authorization": f"Bearer {created['registration_access_token']}"}
    )


async def test_no_iat_is_refused_with_invalid_token(rfc7591_server, http_client):
    adapter = adapter_for(rfc7591_server, http_client, "none")
    with pytest.raises(ProviderError) as caught:
        await adapter.register(application())
    err = caught.value
    assert (err.status, err.code, err.retryable, err.outcome_unknown) == (401, "invalid_token", False, False)
    assert str(err).startswith("the RFC 7591 server register failed: 401 invalid_token")


async def test_a_wrong_admin_secret_fails_minting(rfc7591_server, http_client):
    adapter = adapter_for(rfc7591_server, http_client, "none", initial_client_id=rfc7591_server.admin_client_id)
    wrong = build_adapter(
        provider_type="rfc7591",
        provider_id=PROVIDER_ID,
        issuer=rfc7591_server.issuer,
        dcr_config={"initial_client_id": rfc7591_server.admin_client_id},
        secrets={"initial_client_secret": "not-the-secret"},
        client=http_client,
        token_cache=TokenCache(),
    )
    assert adapter.iat_client is None
    report = await wrong.verify(trial=True)
    assert report.status == "failed"
    assert report.check("management_credentials").status == "failed"
    assert "invalid_client" in report.check("management_credentials").detail
    assert report.check("trial_registration").status == "skipped"


@pytest.mark.parametrize("mode", ["rotating", "minted", "static"])
async def test_verify_with_a_trial_registration(rfc7591_server, http_client, mode):
    adapter = adapter_for(rfc7591_server, http_client, mode)
    report = await adapter.verify(trial=True, app=application("verify"))
    assert report.status == "success", report.errors
    assert [c.name for c in report.checks] == [
        "discovery",
        "registration_endpoint",
        "management_credentials",
        "trial_registration",
    ]
    assert report.check("management_credentials").status == ("passed" if mode == "minted" else "skipped")
    assert report.cleanup is None
    plain = await adapter.verify()
    assert plain.check("trial_registration").status == "skipped"


async def test_verify_against_a_wrong_issuer(rfc7591_server, http_client):
    adapter = build_adapter(
        provider_type="rfc7591",
        provider_id=PROVIDER_ID,
        issuer=rfc7591_server.issuer + "/other",
        dcr_config={"registration_endpoint": "http://127.0.0.1:9/none"},
        client=http_client,
        token_cache=TokenCache(),
    )
    report = await adapter.verify(trial=True)
    assert report.status == "failed"
    assert report.check("discovery").status == "failed"
    assert report.check("registration_endpoint").detail.endswith("http://127.0.0.1:9/none")
    assert report.check("trial_registration").status == "skipped"
