"""`provider_type` → adapter class, and the one function that builds an adapter from a provider row.

    adapter = build_adapter(
        provider_type=row.provider_type,      # "okta", "auth0", "curity", "azureAd", "http", "rfc7591"
        provider_id=str(row.id),
        issuer=row.issuer,
        dcr_config=row.dcr_config,            # plain keys; secret keys here are moved to `secrets`
        secrets=vault_decrypted,              # {"dcr_token": "…"} etc., str or SecretStr
        client=http_client,                   # the app's httpx.AsyncClient (timeouts per §1.4)
        token_cache=token_cache,              # one TokenCache per process
        discovery=discovery_cache,            # one DiscoveryCache per process (optional)
    )

Adapters for types whose module is not installed yet are looked up lazily, so this module imports nothing heavy.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from keystile.dcr.base import BaseProvider, DcrProvider, ProviderConfig, TokenCache, quiet_http_loggers
from keystile.domain.errors import ConfigurationError
from keystile.oidc.discovery import DiscoveryCache

__all__ = ["ADAPTERS", "adapter_class", "build_adapter", "quiet_http_loggers"]

# provider_type → "module:Class" inside keystile.dcr
ADAPTERS: dict[str, str] = {
    "okta": "okta:OktaProvider",
    "auth0": "auth0:Auth0Provider",
    "curity": "curity:CurityProvider",
    "azureAd": "azure_ad:AzureAdProvider",
    "http": "http_bridge:HttpBridgeProvider",
    "rfc7591": "rfc7591:Rfc7591Provider",
}


def adapter_class(provider_type: str) -> type[BaseProvider]:
    """The adapter class of a provider type.

    Raises:
        ConfigurationError: unknown type, or its module is not available.
    """
    target = ADAPTERS.get(provider_type)
    if target is None:
        raise ConfigurationError(f"unknown DCR provider type {provider_type!r}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(f"keystile.dcr.{module_name}")
    except ModuleNotFoundError as exc:
        raise ConfigurationError(f"the {provider_type} adapter is not available") from exc
    cls = getattr(module, class_name)
    if not (isinstance(cls, type) and issubclass(cls, BaseProvider)):  # pragma: no cover - a wiring mistake
        raise ConfigurationError(f"{target} is not a DCR adapter")
    return cls


def build_adapter(
    *,
    provider_type: str,
    provider_id: str,
    issuer: str,
    dcr_config: Mapping[str, Any],
    secrets: Mapping[str, str | SecretStr | None] | None = None,
    client: httpx.AsyncClient,
    token_cache: TokenCache,
    discovery: DiscoveryCache | None = None,
    **options: Any,
) -> DcrProvider:
    """An adapter for one provider row.

    Args:
        provider_type: the row's `provider_type`.
        provider_id: the row's id.
        issuer: the row's `issuer` (a discovery URL is accepted and normalised).
        dcr_config: the row's `dcr_config`; keys the type declares secret (`SECRET_KEYS`) are treated as secrets.
        secrets: decrypted write-only values (merged over secret keys of `dcr_config`); `None` values are dropped.
        client: the injected `httpx.AsyncClient`.
        token_cache: the per-process token cache.
        discovery: the per-process discovery cache (a private one when omitted).
        options: passed to the adapter (`deadline`, `sleep`, `uniform`; for tests).

    Raises:
        ConfigurationError: unknown type, or a required setting or secret is missing.
    """
    cls = adapter_class(provider_type)
    settings = {k: v for k, v in dcr_config.items() if k not in cls.SECRET_KEYS}
    raw_secrets: dict[str, str | SecretStr | None] = {k: v for k, v in dcr_config.items() if k in cls.SECRET_KEYS}
    raw_secrets.update(secrets or {})
    secret_values = {
        k: v if isinstance(v, SecretStr) else SecretStr(v) for k, v in raw_secrets.items() if v is not None and v != ""
    }
    missing = [k for k in cls.REQUIRED_SETTINGS if settings.get(k) in (None, "")]
    missing += [k for k in cls.REQUIRED_SECRETS if k not in secret_values]
    if missing:
        raise ConfigurationError(f"the {provider_type} provider {provider_id} lacks {', '.join(missing)}")
    config = ProviderConfig(
        provider_type=provider_type, provider_id=provider_id, issuer=issuer, settings=settings, secrets=secret_values
    )
    adapter: DcrProvider = cls(config, client, token_cache, discovery, **options)
    return adapter
