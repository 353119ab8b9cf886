"""The gateway's view of identity providers: discovery (with last-good), JWKS, token and introspection calls.

Discovery comes from `keystile.oidc.discovery.DiscoveryCache`; this module adds what the data plane needs on
top (contracts/gateway.md §5.7): the strategy's `issuer` must equal the document's, and when a refetch fails
the last good document stays in use. Every call is counted in `keystile_gateway_idp_requests_total`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from keystile.domain.errors import KeystileError
from keystile.gateway.eager import in_task
from keystile.gateway.metrics import GatewayMetrics
from keystile.gateway.tables import CompiledStrategy
from keystile.oidc.discovery import DiscoveryCache, DiscoveryError, ProviderMetadata
from keystile.oidc.jwks import JwksCache, JwksUnavailableError
from keystile.oidc.tokens import JsonWebKey

__all__ = ["IdpClient", "IdpUnavailableError", "TokenAnswer"]

log = logging.getLogger("keystile.gateway.idp")

EXCHANGE_BUDGET = 5.0


class IdpUnavailableError(KeystileError):
    """The IdP is needed and cannot be used: the gateway answers 503 with `Retry-After`."""

    def __init__(self, detail: str, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


@dataclass(frozen=True)
class TokenAnswer:
    """What a token or introspection endpoint said: `document` on success, else `error` (a rejection)."""

    status: int
    document: dict[str, Any] | None = None
    error: str | None = None


class IdpClient:
    """Outbound calls to IdPs through one injected `httpx.AsyncClient`."""

    def __init__(self, client: httpx.AsyncClient, metrics: GatewayMetrics) -> None:
        self._client = client
        self._metrics = metrics
        self._discovery = DiscoveryCache()
        self._last_good: dict[str, ProviderMetadata] = {}
        self._issuer_of: dict[str, str] = {}
        self.jwks = JwksCache(client, observer=self._jwks_event)

    def _jwks_event(self, jwks_uri: str, kind: str, outcome: str) -> None:
        issuer = self._issuer_of.get(jwks_uri, jwks_uri)
        if kind == "kid_miss":
            self._metrics.jwks_kid_miss(issuer)
            return
        self._metrics.idp_request(issuer, kind, outcome)
        self._metrics.cache_event("jwks", "refresh" if outcome == "ok" else "miss")

    async def metadata(self, strategy: CompiledStrategy) -> ProviderMetadata:
        """The strategy's discovery document (cached; last good kept while the IdP fails).

        Raises:
            IdpUnavailableError: nothing usable, or the document names another issuer.
        """
        await in_task()  # httpx (anyio) needs a task
        url = strategy.discovery_url or strategy.issuer
        try:
            meta = await self._discovery.get(url, self._client)
        except DiscoveryError as exc:
            self._metrics.idp_request(strategy.issuer, "discovery", exc.code)
            last = self._last_good.get(url)
            if last is not None and exc.code != "issuer_mismatch":
                log.warning("discovery for %s failed (%s); using the last good document", strategy.issuer, exc.code)
                return last
            if exc.code == "issuer_mismatch":
                log.error("discovery for strategy %s: %s", strategy.id, exc)
            raise IdpUnavailableError(f"discovery for {strategy.issuer} failed: {exc.code}") from exc
        if self._last_good.get(url) is not meta:
            if url in self._last_good:
                self._metrics.cache_event("discovery", "refresh")
            else:
                self._metrics.idp_request(strategy.issuer, "discovery", "ok")
                self._metrics.cache_event("discovery", "miss")
            self._last_good[url] = meta
        if meta.issuer != strategy.issuer:
            log.error(
                "discovery for strategy %s names issuer %r, the strategy says %r",
                strategy.id,
                meta.issuer,
                strategy.issuer,
            )
            raise IdpUnavailableError("discovery issuer mismatch")
        return meta

    async def keys(self, strategy: CompiledStrategy, kid: str | None) -> list[JsonWebKey]:
        """The issuer's JWKS keys (see `oidc.jwks.JwksCache`).

        Raises:
            IdpUnavailableError: no key set could be had.
        """
        meta = await self.metadata(strategy)
        jwks_uri = meta.jwks_uri
        if jwks_uri is None:
            raise IdpUnavailableError(f"{strategy.issuer} publishes no jwks_uri")
        self._issuer_of[jwks_uri] = strategy.issuer
        try:
            return await self.jwks.keys(jwks_uri, kid)
        except JwksUnavailableError as exc:
            raise IdpUnavailableError(str(exc)) from exc

    async def post_form(
        self,
        strategy: CompiledStrategy,
        kind: str,
        url: str,
        form: dict[str, str],
        auth: tuple[str, str] | None,
    ) -> TokenAnswer:
        """POST a form to a token or introspection endpoint within the 5 s budget (connect 2 s).

        Raises:
            IdpUnavailableError: no answer, 429, 5xx or a malformed answer (`retry_after` from a 429).
        """
        await in_task()
        started = time.monotonic()
        try:
            async with asyncio.timeout(EXCHANGE_BUDGET):
                response = await self._client.post(
                    url,
                    data=form,
                    auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                    headers={"Accept": "application/json"},
                    timeout=httpx.Timeout(EXCHANGE_BUDGET, connect=2.0),
                )
        except (httpx.HTTPError, TimeoutError) as exc:
            self._metrics.idp_request(strategy.issuer, kind, "error")
            log.warning("%s call to %s failed: %s", kind, strategy.issuer, type(exc).__name__)
            raise IdpUnavailableError(f"{kind} endpoint unreachable") from exc
        elapsed = time.monotonic() - started
        status = response.status_code
        if status == 429 or status >= 500:
            self._metrics.idp_request(strategy.issuer, kind, str(status))
            retry_after = 5
            if status == 429:
                value = response.headers.get("retry-after", "")
                retry_after = int(value) if value.isdigit() else 5
            log.warning("%s call to %s answered %d in %.0f ms", kind, strategy.issuer, status, elapsed * 1000)
            raise IdpUnavailableError(f"{kind} endpoint answered {status}", retry_after=retry_after)
        try:
            document = response.json()
        except ValueError:
            document = None
        if status in (400, 401, 403):
            error = document.get("error") if isinstance(document, dict) else None
            self._metrics.idp_request(strategy.issuer, kind, "rejected")
            log.info("%s call to %s refused: %d %s", kind, strategy.issuer, status, error)
            return TokenAnswer(status=status, error=str(error or f"http_{status}"))
        if status != 200 or not isinstance(document, dict):
            self._metrics.idp_request(strategy.issuer, kind, "invalid")
            raise IdpUnavailableError(f"{kind} endpoint answered {status} without a JSON object")
        self._metrics.idp_request(strategy.issuer, kind, "ok")
        return TokenAnswer(status=status, document=document)
