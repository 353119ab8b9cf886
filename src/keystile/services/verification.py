"""`verify` for DCR providers and auth strategies: real round-trips to the IdP that change nothing in keystile
(management-api.md §2 "Verify", §3 "verify")."""

from __future__ import annotations

import uuid
from typing import Any

from keystile.dcr.base import DcrProvider as Adapter
from keystile.dcr.registry import build_adapter
from keystile.dcr.types import AppMetadata, StrategyInfo, VerifyReport
from keystile.domain.errors import ConfigurationError, ProviderError
from keystile.domain.strategies import HONOURED_OIDC_KEYS, OPENID_SCOPES
from keystile.oidc.discovery import DiscoveryError, ProviderMetadata
from keystile.services import providers, strategies
from keystile.services.context import Ctx
from keystile.store.models import DcrProvider

__all__ = ["adapter_for", "verify_provider", "verify_strategy"]

# Which claim carries the client id, per provider type (dcr-providers.md §2.7).
EXPECTED_CLAIMS: dict[str, tuple[str, ...]] = {
    "okta": ("cid", "client_id"),
    "auth0": ("azp", "client_id"),
    "azureAd": ("appid", "azp"),
    "curity": ("sub",),
    "rfc7591": ("client_id",),
    "http": ("client_id",),
}
_CORE_OIDC_KEYS = frozenset({"issuer", "credential_claim", "scopes", "auth_methods"})


def adapter_for(ctx: Ctx, row: DcrProvider) -> Adapter:
    """The adapter for a provider row, with its secrets decrypted just for this call."""
    rt = ctx.runtime
    return build_adapter(
        provider_type=row.provider_type,
        provider_id=str(row.id),
        issuer=row.discovery_url or row.issuer,
        dcr_config=row.dcr_config,
        secrets=providers.decrypted_secrets(ctx, row),
        client=rt.http,
        token_cache=rt.token_cache,
        discovery=rt.discovery,
    )


def _out(report: VerifyReport, warnings: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": report.status,
        "errors": list(report.errors),
        "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in report.checks],
    }
    if warnings is not None:
        out["warnings"] = warnings
    if report.cleanup is not None:
        out["pending_cleanup"] = {"client_id": report.cleanup.client_id}
    return out


async def _provider_report(ctx: Ctx, row: DcrProvider, trial: bool, app: AppMetadata | None = None) -> VerifyReport:
    try:
        adapter = adapter_for(ctx, row)
    except ConfigurationError as exc:
        report = VerifyReport()
        report.failed("configuration", str(exc))
        return report
    try:
        return await adapter.verify(trial=trial, app=app)
    except ProviderError as exc:  # adapters report IdP answers; this is a failure outside them
        report = VerifyReport()
        report.failed("provider", str(exc))
        return report


async def verify_provider(ctx: Ctx, provider_id: uuid.UUID, *, trial: bool) -> dict[str, Any]:
    row = await providers.get_row(ctx, provider_id)
    return _out(await _provider_report(ctx, row, trial))


async def verify_strategy(ctx: Ctx, strategy_id: uuid.UUID, *, trial: bool) -> dict[str, Any]:
    """Check a strategy against its issuer and provider; every problem is listed, nothing is changed."""
    row = await strategies.get_row(ctx, strategy_id)
    report = VerifyReport()
    warnings: list[str] = []
    if row.strategy_type == "key_auth":
        report.passed("configuration", "key-auth strategies need no identity provider")
        return _out(report, warnings)
    cfg = row.configs
    methods = list(cfg.get("auth_methods", []))
    meta: ProviderMetadata | None = None
    try:
        meta = await ctx.runtime.discovery.get(cfg["issuer"], ctx.runtime.http)
    except DiscoveryError as exc:
        report.failed("discovery", f"issuer discovery failed: {exc}")
    else:
        report.passed("discovery", f"issuer metadata fetched from {meta.source_url}; issuer matches")
    if meta is not None:
        if "client_credentials" in methods:
            if meta.token_endpoint:
                report.passed("token_endpoint", f"token endpoint {meta.token_endpoint}")
            else:
                report.failed("token_endpoint", "the issuer publishes no token_endpoint (needed by client_credentials)")
        if "bearer" in methods:
            if meta.jwks_uri:
                report.passed("jwks_uri", f"JWKS at {meta.jwks_uri}")
            else:
                report.failed("jwks_uri", "the issuer publishes no jwks_uri (needed to verify bearer tokens)")
        if "introspection" in methods:
            if meta.endpoint("introspection_endpoint"):
                report.passed("introspection_endpoint", "introspection endpoint published")
            else:
                report.failed("introspection_endpoint", "the issuer publishes no introspection_endpoint")
    provider = await ctx.session.get(DcrProvider, row.dcr_provider_id) if row.dcr_provider_id else None
    extra = sorted(k for k in cfg if k not in _CORE_OIDC_KEYS and k not in HONOURED_OIDC_KEYS)
    if extra:
        warnings.append(f"the gateway ignores these additional keys: {', '.join(extra)}")
    if provider is not None:
        if "client_credentials" in methods and provider.provider_type in ("okta", "curity"):
            openid = [s for s in cfg.get("scopes", []) if s in OPENID_SCOPES]
            if openid:
                warnings.append(
                    f"scopes {', '.join(openid)}: the IdP refuses OpenID scopes for client credentials; the gateway "
                    "leaves them out of client-credentials requests, so add a custom scope"
                )
        provider_issuer = provider.discovery_url or provider.issuer
        if cfg["issuer"].rstrip("/") not in (provider_issuer.rstrip("/"), provider.issuer.rstrip("/")):
            warnings.append(f"the strategy issuer {cfg['issuer']} differs from the provider issuer {provider_issuer}")
        expected = EXPECTED_CLAIMS.get(provider.provider_type, ())
        if expected and not set(cfg.get("credential_claim", [])) & set(expected):
            warnings.append(
                f"credential_claim {cfg.get('credential_claim')} names none of the claims a {provider.provider_type} "
                f"provider puts the client id in ({', '.join(expected)})"
            )
        app = AppMetadata(
            application_id=uuid.uuid4(),
            name="keystile verify",
            description="throwaway client made by keystile's strategy verification; safe to delete",
            dcr_provider_id=str(provider.id),
            auth_strategy_id=str(row.id),
            scopes=tuple(s for s in cfg.get("scopes", []) if s not in OPENID_SCOPES),
            strategy=StrategyInfo(
                auth_methods=tuple(methods),
                scopes=tuple(cfg.get("scopes", [])),
                token_post_args_names=tuple(cfg.get("token_post_args_names") or ()),
                token_post_args_values=tuple(cfg.get("token_post_args_values") or ()),
            ),
        )
        sub = await _provider_report(ctx, provider, trial, app)
        for check in sub.checks:
            name = f"provider.{check.name}"
            if check.status == "failed":
                report.failed(name, check.detail)
            elif check.status == "passed":
                report.passed(name, check.detail)
            elif check.status == "warning":
                report.warning(name, check.detail)
                warnings.append(check.detail)
            else:
                report.skipped(name, check.detail)
        report.cleanup = sub.cleanup
    for text in warnings:
        if not any(c.detail == text for c in report.checks):
            report.warning("configuration", text)
    return _out(report, warnings)
