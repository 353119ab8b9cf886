"""The `http` adapter against a real bridge on loopback (contracts/dcr-providers.md §2.5, §2.8 http row, §4.3)."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from keystile.dcr.base import TokenCache
from keystile.dcr.http_bridge import HttpBridgeProvider
from keystile.dcr.naming import client_name
from keystile.dcr.registry import build_adapter
from keystile.dcr.types import AppMetadata, ClientRef, HookEvent, StrategyInfo
from keystile.domain.errors import ProviderError
from tests.integration.dcr.conftest import Bridge

PROVIDER_ID = "a4d2c1b0-9e8f-4a7b-8c6d-5e4f3a2b1c0d"
STRATEGY = StrategyInfo(
    auth_methods=("client_credentials", "bearer"),
    scopes=("openid", "orders:read"),
    token_post_args_names=("audience",),
    token_post_args_values=("https://api.shop.test",),
)


def application(name: str = "Orders", **kwargs: Any) -> AppMetadata:
    defaults: dict[str, Any] = {
        "application_id": uuid.uuid4(),
        "description": "Order lookups",
        "scopes": ("openid", "orders:read"),
        "developer_id": "dev-1",
        "portal_id": "portal-1",
        "auth_strategy_id": "strategy-1",
        "dcr_provider_id": PROVIDER_ID,
        "organization_id": "org-1",
        "strategy": STRATEGY,
    }
    defaults.update(kwargs)
    return AppMetadata(name=name, **defaults)


async def no_sleep(seconds: float) -> None:
    """Retries without waiting: the backoff itself is tested in tests/unit/dcr/test_base.py."""


def adapter_for(bridge: Bridge, client, *, base_url: str | None = None, api_key: str | None = None, **flags: Any):
    adapter = build_adapter(
        provider_type="http",
        provider_id=PROVIDER_ID,
        issuer=bridge.origin,
        dcr_config={"dcr_base_url": base_url or bridge.base_url, **flags},
        secrets={"api_key": api_key or bridge.api_key},
        client=client,
        token_cache=TokenCache(),
        sleep=no_sleep,
    )
    assert isinstance(adapter, HttpBridgeProvider)
    return adapter


async def test_register_sends_exactly_the_11_fields_and_the_api_key(bridge, http_client):
    adapter = adapter_for(bridge, http_client)
    app = application("Orders <beta>", redirect_uri="https://shop.test/cb")
    issued = await adapter.register(app)
    [received] = bridge.state.received
    assert received.method == "POST"
    assert received.raw_path == "/dcr/"
    assert received.headers["x-api-key"] == bridge.api_key
    assert received.headers["accept"] == "application/json"
    assert received.headers["content-type"] == "application/json"
    assert received.body == {
        "redirect_uris": ["https://shop.test/cb"],
        "client_name": client_name("Orders beta", app.application_id),
        "grant_types": ["client_credentials", "bearer"],
        "scopes": ["orders:read"],
        "token_endpoint_auth_method": "client_secret_basic",
        "application_description": "Order lookups",
        "portal_id": "portal-1",
        "organization_id": "org-1",
        "developer_id": "dev-1",
        "auth_strategy_id": "strategy-1",
        "dcr_provider_id": PROVIDER_ID,
    }
    assert issued.client_secret.get_secret_value() == bridge.state.clients[issued.client_id]
    assert "client_secret" not in issued.metadata
    assert issued.secret_handles == {}
    machine = application(description="")
    await adapter.register(machine)
    assert bridge.state.received[1].body["redirect_uris"] == []
    assert bridge.state.received[1].body["application_description"] == ""


@pytest.mark.parametrize("status", [201, 200, 202])
async def test_any_2xx_is_success(bridge, http_client, status):
    bridge.state.register_status = status
    issued = await adapter_for(bridge, http_client).register(application())
    assert issued.client_id in bridge.state.clients


async def test_numeric_string_and_date_time_times(bridge, http_client):
    adapter = adapter_for(bridge, http_client)
    bridge.state.time_format = "number"
    numeric = await adapter.register(application())
    assert numeric.issued_at is not None
    assert numeric.issued_at.tzinfo is not None
    assert numeric.expires_at is None  # 0 = never
    bridge.state.time_format = "string"
    strings = await adapter.register(application())
    assert strings.expires_at is not None
    assert strings.expires_at > strings.issued_at
    bridge.state.time_format = "datetime"
    dated = await adapter.register(application())
    assert abs((dated.issued_at - datetime.now(UTC)).total_seconds()) < 60
    assert dated.expires_at is None  # null = never
    bridge.state.time_format = "none"
    bare = await adapter.register(application())
    assert (bare.issued_at, bare.expires_at) == (None, None)
    bridge.state.time_format = "garbage"  # unreadable times are unknown, not a failed registration
    odd = await adapter.register(application())
    assert (odd.issued_at, odd.expires_at) == (None, None)
    assert odd.metadata["client_id_issued_at"] == "yesterday"


async def test_extra_response_fields_are_accepted_and_kept(bridge, http_client):
    bridge.state.extra_fields = True
    issued = await adapter_for(bridge, http_client).register(application())
    assert issued.metadata["bridge_version"] == "1.2.3"
    assert issued.metadata["links"] == {"self": "/x"}


async def test_a_wrong_api_key_is_mapped(bridge, http_client):
    adapter = adapter_for(bridge, http_client, api_key="not_the_right_key_123")
    with pytest.raises(ProviderError) as caught:
        await adapter.register(application())
    err = caught.value
    assert (err.status, err.code, err.retryable, err.outcome_unknown) == (401, "Wrong API-Key", False, False)
    assert str(err) == "the HTTP DCR bridge register failed: 401 Wrong API-Key: the bridge rejected keystile's API key"
    assert "not_the_right_key_123" not in repr(err)


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("client_name is taken", "client_name is taken"),
        ([{"path": "scopes", "message": "unknown scope"}], '[{"path":"scopes","message":"unknown scope"}]'),
    ],
)
async def test_a_non_2xx_halts_creation_with_the_bridges_description(bridge, http_client, description, expected):
    bridge.state.fail_next["register"] = (400, {"error": "invalid_client_metadata", "error_description": description})
    with pytest.raises(ProviderError) as caught:
        await adapter_for(bridge, http_client).register(application())
    assert caught.value.description == expected
    assert caught.value.code == "invalid_client_metadata"
    assert bridge.state.clients == {}
    assert len(bridge.state.received) == 1


async def test_the_bridge_refuses_an_extra_payload_field(bridge, http_client):
    class Chatty(HttpBridgeProvider):
        def application_payload(self, app: AppMetadata) -> dict[str, Any]:
            return {**super().application_payload(app), "extra": "x"}

    adapter = adapter_for(bridge, http_client)
    chatty = Chatty(adapter.config, http_client, TokenCache())
    with pytest.raises(ProviderError) as caught:
        await chatty.register(application())
    assert caught.value.status == 400
    assert "must NOT have additional properties" in caught.value.description


async def test_a_2xx_without_a_secret_is_invalid_and_compensated(bridge, http_client):
    bridge.state.omit = {"client_secret"}
    with pytest.raises(ProviderError) as caught:
        await adapter_for(bridge, http_client).register(application())
    err = caught.value
    assert (err.code, err.retryable) == ("invalid_response", False)
    assert err.outcome_unknown is False  # the compensating DELETE landed
    assert err.extra["compensation"].endswith("deleted")
    assert [r.method for r in bridge.state.received] == ["POST", "DELETE"]
    assert bridge.state.clients == {}


async def test_a_failed_compensation_leaves_the_outcome_unknown(bridge, http_client):
    bridge.state.omit = {"client_secret"}
    bridge.state.fail_next["delete"] = (400, {"error": "nope", "error_description": "refused"})
    with pytest.raises(ProviderError) as caught:
        await adapter_for(bridge, http_client).register(application())
    assert caught.value.outcome_unknown is True
    assert "the DELETE of br-" in caught.value.extra["compensation"]


async def test_a_2xx_without_a_client_id_is_invalid_and_not_compensated(bridge, http_client):
    bridge.state.omit = {"client_id"}
    with pytest.raises(ProviderError) as caught:
        await adapter_for(bridge, http_client).register(application())
    assert caught.value.outcome_unknown is True
    assert "compensation" not in caught.value.extra
    assert [r.method for r in bridge.state.received] == ["POST"]


async def test_rotate_deregister_and_percent_encoded_ids(bridge, http_client):
    adapter = adapter_for(bridge, http_client)
    app = application()
    issued = await adapter.register(app)
    ref = issued.as_ref(app.application_id)
    rotated = await adapter.rotate_secret(ref)
    assert rotated.client_secret.get_secret_value() == bridge.state.clients[issued.client_id]
    assert rotated.client_secret.get_secret_value() != issued.client_secret.get_secret_value()
    new_secret = bridge.state.sent("POST")[-1]
    assert new_secret.raw_path == f"/dcr/{issued.client_id}/new-secret"
    assert new_secret.body is None
    assert "content-type" not in new_secret.headers
    await adapter.deregister(ref)
    assert issued.client_id not in bridge.state.clients
    await adapter.deregister(ref)  # 404 = already gone
    odd = ClientRef(client_id="a b/c", application_id=app.application_id)
    await adapter.deregister(odd)
    assert bridge.state.received[-1].raw_path == "/dcr/a%20b%2Fc"


async def test_a_rotation_answer_naming_another_client_is_invalid(bridge, http_client):
    adapter = adapter_for(bridge, http_client)
    app = application()
    issued = await adapter.register(app)
    bridge.state.new_secret_client_id = "someone-else"
    with pytest.raises(ProviderError) as caught:
        await adapter.rotate_secret(issued.as_ref(app.application_id))
    assert caught.value.code == "invalid_response"
    assert "someone-else" in caught.value.description


async def test_each_flag_means_no_call(bridge, http_client):
    adapter = adapter_for(
        bridge, http_client, disable_refresh_secret=True, disable_event_hooks=True, allow_multiple_credentials=True
    )
    ref = ClientRef(client_id="br-1", application_id=uuid.uuid4())
    with pytest.raises(ProviderError) as caught:
        await adapter.rotate_secret(ref)
    assert caught.value.code == "unsupported_operation"
    with pytest.raises(ProviderError) as caught:
        await adapter_for(bridge, http_client).rotate_secret(ref, "add")
    assert caught.value.code == "unsupported_operation"
    for event_type in ("update_application", "add_registration", "remove_registration"):
        assert await adapter.on_event(ref, HookEvent(event_type, application())) is None
    assert bridge.state.received == []
    caps = adapter.capabilities
    assert (caps.rotate, caps.overlap, caps.events) == (False, False, frozenset())
    default = adapter_for(bridge, http_client).capabilities
    assert default.rotate
    assert default.events == frozenset({"update_application", "add_registration", "remove_registration"})


async def test_event_payload_per_type(bridge, http_client):
    adapter = adapter_for(bridge, http_client)
    app = application("Orders", redirect_uri="https://shop.test/cb")
    ref = ClientRef(client_id="br-42", application_id=app.application_id)
    common = {
        "client_id": "br-42",
        "application_id": str(app.application_id),
        "application_name": "Orders",
        "application_description": "Order lookups",
        "portal_id": "portal-1",
        "organization_id": "org-1",
        "developer_id": "dev-1",
        "auth_strategy_id": "strategy-1",
        "dcr_provider_id": PROVIDER_ID,
    }
    assert await adapter.on_event(ref, HookEvent("update_application", app)) is None
    await adapter.on_event(ref, HookEvent("add_registration", app, api_product_version_id="pv-1"))
    await adapter.on_event(
        ref, HookEvent("remove_registration", app, api_product_version_id="pv-2", audience="https://other.test")
    )
    no_audience = application(strategy=StrategyInfo())
    await adapter.on_event(ref, HookEvent("add_registration", no_audience, api_product_version_id="pv-3"))
    bodies = [r.body for r in bridge.state.received]
    assert all(r.raw_path == "/dcr/br-42/event-hook" for r in bridge.state.received)
    assert bodies[0] == {**common, "event_type": "update_application", "redirect_uris": ["https://shop.test/cb"]}
    assert bodies[1] == {
        **common,
        "event_type": "add_registration",
        "api_product_version_id": "pv-1",
        "audience": "https://api.shop.test",
    }
    assert bodies[2] == {
        **common,
        "event_type": "remove_registration",
        "api_product_version_id": "pv-2",
        "audience": "https://other.test",
    }
    assert "audience" not in bodies[3]
    assert bodies[3]["application_id"] == str(no_audience.application_id)


async def test_verify_reachable_wrong_key_unreachable_and_trial(bridge, http_client):
    report = await adapter_for(bridge, http_client).verify(trial=True)
    assert report.status == "success", report.errors
    assert [c.status for c in report.checks] == ["passed", "passed", "passed"]
    assert "answered 404 to a DELETE of keystile-verify-" in report.check("management_credentials").detail
    assert bridge.state.clients == {}
    assert [r.method for r in bridge.state.received] == ["DELETE", "POST", "DELETE"]

    wrong = await adapter_for(bridge, http_client, api_key="wrong_key_wrong_key").verify(trial=True)
    assert wrong.errors == ["the bridge rejected keystile's API key"]
    assert wrong.check("trial_registration").status == "skipped"

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        down = await adapter_for(bridge, http_client, base_url=f"http://127.0.0.1:{port}/dcr").verify()
    assert down.check("management_credentials").status == "failed"
    assert down.errors[0].startswith("the bridge is unreachable: the HTTP DCR bridge verify failed: connect_error")
    assert down.check("trial_registration").detail == "not requested"


async def test_verify_warns_when_the_issuer_has_no_discovery(bridge, http_client):
    adapter = build_adapter(
        provider_type="http",
        provider_id=PROVIDER_ID,
        issuer=bridge.origin + "/elsewhere",
        dcr_config={"dcr_base_url": bridge.base_url},
        secrets={"api_key": SecretStr(bridge.api_key)},
        client=http_client,
        token_cache=TokenCache(),
    )
    report = await adapter.verify()
    assert report.status == "success"
    assert report.check("discovery").status == "warning"
