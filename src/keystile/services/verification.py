"""`verify` for DCR providers and auth strategies: real round-trips to the IdP that change nothing in keystile
(management-api.md §2 "Verify", §3 "verify")."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from keystile.dcr.base import DcrProvider as Adapter
from keystile.dcr.registry import build_adapter
from keystile.dcr.types import AppMetadata, StrategyInfo, VerifyReport
from keystile.domain.errors import ConfigurationError, ProviderError
from keystile.domain.strategies import HONOURED_OIDC_KEYS, OPENID_SCOPES
from keystile.domain.urls import DISCOVERY_SUFFIX
from keystile.oidc.discovery import DiscoveryError, ProviderMetadata
from keystile.oidc.tokens import JsonWebKey, TokenInvalidError, parse_unverified, verify_jwt
from keystile.services import outbox, providers, strategies
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


def _merge(report: VerifyReport, sub: VerifyReport, warnings: list[str]) -> None:
    """The provider's own checks, as `provider.<name>` checks of the strategy report."""
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


def _strategy_info(cfg: dict[str, Any]) -> StrategyInfo:
    return StrategyInfo(
        auth_methods=tuple(cfg.get("auth_methods", [])),
        scopes=tuple(cfg.get("scopes", [])),
        token_post_args_names=tuple(cfg.get("token_post_args_names") or ()),
        token_post_args_values=tuple(cfg.get("token_post_args_values") or ()),
    )


async def _exchange(
    ctx: Ctx, token_endpoint: str, client_id: str, secret: str, cfg: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """A client-credentials request exactly as the gateway sends it (gateway.md §5.3)."""
    form = {"grant_type": "client_credentials"}
    scopes = [s for s in cfg.get("scopes", []) if s not in OPENID_SCOPES]
    if scopes:
        form["scope"] = " ".join(scopes)
    form.update(_strategy_info(cfg).token_post_args())
    response = await ctx.runtime.http.post(token_endpoint, data=form, auth=(client_id, secret))
    try:
        body = response.json()
    except ValueError:
        body = {}
    return response.status_code, body if isinstance(body, dict) else {}


async def _strategy_trial(
    ctx: Ctx,
    provider: DcrProvider,
    strategy_id: uuid.UUID,
    cfg: dict[str, Any],
    meta: ProviderMetadata | None,
    report: VerifyReport,
) -> None:
    """Register a temporary client, exchange its credentials with the strategy's scopes and token_post_args,
    verify the token as the gateway does, check that a `credential_claim` carries the client id, delete it."""
    if meta is None or not meta.token_endpoint:
        report.skipped("trial_registration", "no token endpoint to try the credentials at")
        return
    try:
        adapter = adapter_for(ctx, provider)
    except ConfigurationError as exc:
        report.failed("trial_registration", str(exc))
        return
    app = AppMetadata(
        application_id=uuid.uuid4(),
        name="keystile verify",
        description="throwaway client made by keystile's strategy verification; safe to delete",
        dcr_provider_id=str(provider.id),
        auth_strategy_id=str(strategy_id),
        scopes=tuple(s for s in cfg.get("scopes", []) if s not in OPENID_SCOPES),
        strategy=_strategy_info(cfg),
        created_at=datetime.now(UTC),
    )
    await ctx.before_idp_call()
    try:
        issued = await adapter.register(app)
    except ProviderError as exc:
        report.failed("trial_registration", f"trial registration failed: {exc}")
        return
    report.passed("trial_registration", f"client {issued.client_id} registered")
    try:
        await _trial_token(
            ctx, cfg, meta, issued.client_id, issued.client_secret.get_secret_value(), issued.needs_probe, report
        )
    finally:
        try:
            await adapter.deregister(issued.as_ref(app.application_id, app.created_at))
        except ProviderError as exc:
            report.cleanup = issued.as_ref(app.application_id, app.created_at)
            report.cleanup_landed = exc.may_have_landed
            report.failed("trial_cleanup", f"the trial client {issued.client_id} could not be deleted: {exc}")
        else:
            report.passed("trial_cleanup", f"client {issued.client_id} deleted")


async def _trial_token(
    ctx: Ctx,
    cfg: dict[str, Any],
    meta: ProviderMetadata,
    client_id: str,
    secret: str,
    needs_probe: bool,
    report: VerifyReport,
) -> None:
    assert meta.token_endpoint is not None
    status, body = await _exchange(ctx, meta.token_endpoint, client_id, secret, cfg)
    # a new secret may take seconds to work at some IdPs (Entra, Auth0 after rotation): probe as the portal does
    for delay in (1, 2, 4, 8, 5) if needs_probe else ():
        if status == 200:
            break
        await asyncio.sleep(delay)
        status, body = await _exchange(ctx, meta.token_endpoint, client_id, secret, cfg)
    token = body.get("access_token")
    if status != 200 or not isinstance(token, str):
        error = body.get("error") or f"HTTP {status}"
        described = body.get("error_description")
        report.failed(
            "trial_token",
            f"the token endpoint refused the new client's credentials with the strategy's scopes and "
            f"token_post_args: {error}" + (f" ({described})" if isinstance(described, str) else ""),
        )
        return
    report.passed("trial_token", "an access token was issued for the new client")
    unverified = parse_unverified(token)
    if unverified is None:
        if "introspection" in cfg.get("auth_methods", []):
            report.skipped("trial_jwt", "the access token is opaque; the gateway will introspect it")
        else:
            report.failed("trial_jwt", "the access token is not a JWT, so the gateway cannot verify it as a bearer")
        return
    if not meta.jwks_uri:
        report.failed("trial_jwt", "the issuer publishes no jwks_uri to verify the token with")
        return
    try:
        jwks = (await ctx.runtime.http.get(meta.jwks_uri)).json()
        keys = [k for k in (JsonWebKey.from_jwk(j) for j in jwks.get("keys", [])) if k is not None]
        audience = cfg.get("audience")
        claims = verify_jwt(
            unverified,
            keys,
            issuer=cfg["issuer"].removesuffix(DISCOVERY_SUFFIX),
            now=time.time(),
            audience=[audience] if isinstance(audience, str) else list(audience or []),
            scopes_required=list(cfg.get("scopes_required") or []),
        )
    except (TokenInvalidError, ValueError, AttributeError, httpx.HTTPError) as exc:
        report.failed("trial_jwt", f"the token does not verify as the gateway checks it: {exc}")
        return
    report.passed("trial_jwt", f"signature, issuer, expiry and audience verified (alg {unverified.header.get('alg')})")
    names = list(cfg.get("credential_claim", []))
    carrying = [n for n in names if claims.get(n) == client_id]
    if carrying:
        report.passed("trial_credential_claim", f"claim {carrying[0]!r} carries the client id")
    else:
        present = ", ".join(f"{n}={claims.get(n)!r}" for n in names)
        report.failed(
            "trial_credential_claim",
            f"no credential_claim carries the new client id {client_id!r} ({present}); the gateway could not "
            "find the application",
        )


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


async def _queue_cleanup(ctx: Ctx, provider_id: uuid.UUID, report: VerifyReport) -> None:
    """A trial client that could not be deleted goes to the outbox, which retries the delete (§2 "Verify")."""
    if report.cleanup is None:
        return
    outbox.enqueue_deregister(
        ctx,
        provider_id,
        report.cleanup,
        last_error="trial client clean-up failed",
        maybe_landed=report.cleanup_landed,
    )
    await ctx.session.commit()


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
    await ctx.before_idp_call()
    try:
        return await adapter.verify(trial=trial, app=app)
    except ProviderError as exc:  # adapters report IdP answers; this is a failure outside them
        report = VerifyReport()
        report.failed("provider", str(exc))
        return report


async def verify_provider(ctx: Ctx, provider_id: uuid.UUID, *, trial: bool) -> dict[str, Any]:
    row = await providers.get_row(ctx, provider_id)
    report = await _provider_report(ctx, row, trial)
    await _queue_cleanup(ctx, row.id, report)
    return _out(report)


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
        sub = await _provider_report(ctx, provider, trial=False)
        _merge(report, sub, warnings)
        if trial:
            await _strategy_trial(ctx, provider, row.id, cfg, meta, report)
        else:
            report.skipped("trial_registration", "not requested")
    for text in warnings:
        if not any(c.detail == text for c in report.checks):
            report.warning("configuration", text)
    if provider is not None:
        await _queue_cleanup(ctx, provider.id, report)
    return _out(report, warnings)
