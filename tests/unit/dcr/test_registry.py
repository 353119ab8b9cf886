"""Building adapters from provider rows (`keystile.dcr.registry`)."""

from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import SecretStr

from keystile.dcr.base import TokenCache
from keystile.dcr.curity import CurityProvider
from keystile.dcr.http_bridge import HttpBridgeProvider
from keystile.dcr.registry import ADAPTERS, adapter_class, build_adapter
from keystile.dcr.rfc7591 import Rfc7591Provider
from keystile.domain.errors import ConfigurationError
from keystile.oidc.discovery import DiscoveryCache


def test_known_types_map_to_their_classes():
    assert set(ADAPTERS) == {"okta", "auth0", "curity", "azureAd", "http", "rfc7591"}
    assert adapter_class("rfc7591") is Rfc7591Provider
    assert adapter_class("curity") is CurityProvider
    assert adapter_class("http") is HttpBridgeProvider
    with pytest.raises(ConfigurationError, match="unknown DCR provider type 'kongIdentity'"):
        adapter_class("kongIdentity")


def test_a_missing_module_is_a_configuration_error(monkeypatch):
    monkeypatch.setitem(ADAPTERS, "ghost", "no_such_module:Ghost")
    with pytest.raises(ConfigurationError, match="the ghost adapter is not available"):
        adapter_class("ghost")


async def test_build_splits_secrets_from_settings_and_quiets_httpx():
    logging.getLogger("httpx").setLevel(logging.NOTSET)
    discovery = DiscoveryCache()
    async with httpx.AsyncClient() as client:
        adapter = build_adapter(
            provider_type="http",
            provider_id="p-1",
            issuer="https://idp.test",
            dcr_config={
                "dcr_base_url": "https://bridge.test/dcr/",
                "api_key": "from_config_value",
                "disable_event_hooks": True,
            },
            secrets={"api_key": SecretStr("decrypted_api_key_1"), "unused": None},
            client=client,
            token_cache=TokenCache(),
            discovery=discovery,
        )
    assert isinstance(adapter, HttpBridgeProvider)
    assert adapter.config.settings == {"dcr_base_url": "https://bridge.test/dcr/", "disable_event_hooks": True}
    assert adapter.config.secrets["api_key"].get_secret_value() == "decrypted_api_key_1"
    assert "unused" not in adapter.config.secrets
    assert adapter.discovery_cache is discovery
    assert adapter.provider_id == "p-1"
    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("httpcore").level >= logging.WARNING


async def test_secret_keys_in_dcr_config_become_secrets_and_missing_ones_are_named():
    async with httpx.AsyncClient() as client:
        adapter = build_adapter(
            provider_type="rfc7591",
            provider_id="p-2",
            issuer="https://idp.test",
            dcr_config={"initial_access_token": "plain-iat-value", "rotates_secret_on_put": True},
            client=client,
            token_cache=TokenCache(),
        )
        assert adapter.config.secret("initial_access_token").get_secret_value() == "plain-iat-value"
        assert "initial_access_token" not in adapter.config.settings
        assert isinstance(adapter.discovery_cache, DiscoveryCache)
        with pytest.raises(ConfigurationError, match="lacks dcr_base_url, api_key"):
            build_adapter(
                provider_type="http",
                provider_id="p-3",
                issuer="https://i.test",
                dcr_config={},
                client=client,
                token_cache=TokenCache(),
            )
        with pytest.raises(ConfigurationError, match="lacks initial_client_id"):
            build_adapter(
                provider_type="curity",
                provider_id="p-4",
                issuer="https://i.test",
                dcr_config={"initial_client_id": ""},
                secrets={"initial_client_secret": "s" * 10},
                client=client,
                token_cache=TokenCache(),
            )
