"""OpenID Connect Discovery 1.0 / RFC 8414 metadata, fetched and cached per issuer.

Used by the DCR adapters and by the gateway. Rules:

- An issuer given as its discovery URL (ending in `/.well-known/openid-configuration`, as Konnect's Curity guide
  writes it) is used as that URL and its prefix becomes the issuer (`normalize_issuer`).
- `{issuer}/.well-known/openid-configuration` first; when that answers 4xx, RFC 8414 §3.1
  `{origin}/.well-known/oauth-authorization-server{issuer path}`.
- The document's `issuer` MUST equal the configured issuer (OpenID Discovery §4.3, RFC 8414 §3.3).
- Cached for the response's `Cache-Control: max-age`, clamped to 5 minutes – 24 hours (1 hour when absent);
  concurrent fetches for one issuer share one request. Failures are not cached.

Every failure is a `DiscoveryError` (a `KeystileError`) raised `from` the original exception.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from keystile.domain.errors import KeystileError
from keystile.domain.urls import check_https_url

__all__ = [
    "DEFAULT_MAX_AGE",
    "MAX_MAX_AGE",
    "MIN_MAX_AGE",
    "OPENID_SUFFIX",
    "DiscoveryCache",
    "DiscoveryError",
    "ProviderMetadata",
    "candidate_urls",
    "normalize_issuer",
]

_ENDPOINTS = ("token_endpoint", "jwks_uri", "registration_endpoint", "introspection_endpoint")
logger = logging.getLogger("keystile.oidc.discovery")

OPENID_SUFFIX = "/.well-known/openid-configuration"
OAUTH_SUFFIX = "/.well-known/oauth-authorization-server"
MIN_MAX_AGE = 300.0
MAX_MAX_AGE = 86400.0
DEFAULT_MAX_AGE = 3600.0
_MAX_AGE_RE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


class DiscoveryError(KeystileError):
    """Issuer metadata could not be had.

    Attributes:
        issuer: the configured issuer.
        url: the last URL tried.
        status: the HTTP status, `None` when no response came.
        code: `connect_error`, `timeout`, `invalid_response`, `issuer_mismatch` or `http_<status>`.
        retryable: whether trying again later may help.
    """

    def __init__(
        self, detail: str, *, issuer: str, url: str, code: str, status: int | None = None, retryable: bool = False
    ) -> None:
        super().__init__(detail)
        self.issuer = issuer
        self.url = url
        self.code = code
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True)
class ProviderMetadata:
    """A validated discovery document."""

    issuer: str
    raw: Mapping[str, Any] = field(repr=False)
    source_url: str = ""

    def get(self, name: str) -> Any:
        return self.raw.get(name)

    def endpoint(self, name: str) -> str | None:
        """A string-valued endpoint such as `token_endpoint`, else `None`."""
        value = self.raw.get(name)
        return value if isinstance(value, str) and value else None

    @property
    def token_endpoint(self) -> str | None:
        return self.endpoint("token_endpoint")

    @property
    def registration_endpoint(self) -> str | None:
        return self.endpoint("registration_endpoint")

    @property
    def jwks_uri(self) -> str | None:
        return self.endpoint("jwks_uri")


def normalize_issuer(issuer: str) -> str:
    """The issuer for a configured value that may be its discovery URL (suffix and a query stripped)."""
    value = issuer.strip()
    if value.endswith(OPENID_SUFFIX):
        return value[: -len(OPENID_SUFFIX)]
    return value


def candidate_urls(issuer: str) -> list[str]:
    """The discovery URLs to try for an issuer, in order (OpenID first, then RFC 8414 §3.1)."""
    base = normalize_issuer(issuer)
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    return [base.rstrip("/") + OPENID_SUFFIX, f"{parts.scheme}://{parts.netloc}{OAUTH_SUFFIX}{path}"]


def _max_age(headers: httpx.Headers) -> float:
    match = _MAX_AGE_RE.search(headers.get("cache-control", ""))
    if match is None:
        return DEFAULT_MAX_AGE
    return min(MAX_MAX_AGE, max(MIN_MAX_AGE, float(match.group(1))))


REFRESH_AT = 0.8  # share of a document's lifetime after which a use starts a background refetch
REFRESH_RETRY = 30.0  # seconds between background refetches while they fail


@dataclass(slots=True)
class _Cached:
    metadata: ProviderMetadata
    refresh_at: float
    expires_at: float


class DiscoveryCache:
    """Per-process cache of issuer metadata; safe to share between adapters and requests.

    A document is kept for its `Cache-Control: max-age` (clamped to 5 min – 24 h, default 1 h). Once 80 % of that
    has passed, the next use starts one background refetch and still answers from the cache, so no request waits
    on discovery while the IdP is up; a failed refetch keeps the cached document until it expires and is tried
    again 30 s later.

    Args:
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    def forget(self, issuer: str) -> None:
        """Drop the cached document of an issuer (e.g. after a config change)."""
        self._entries.pop(normalize_issuer(issuer), None)

    async def get(self, issuer: str, client: httpx.AsyncClient) -> ProviderMetadata:
        """The metadata of `issuer`, from the cache while fresh.

        Raises:
            DiscoveryError: no document could be fetched, it is not a JSON object, or its issuer differs.
        """
        key = normalize_issuer(issuer)
        cached = self._entries.get(key)
        now = self._clock()
        if cached is not None and cached.expires_at > now:
            if now >= cached.refresh_at and key not in self._refreshing:
                task = asyncio.get_running_loop().create_task(self._refresh(key, client))
                self._refreshing[key] = task
            return cached.metadata
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._entries.get(key)
            if cached is not None and cached.expires_at > self._clock():
                return cached.metadata
            return await self._store(key, client)

    async def _store(self, key: str, client: httpx.AsyncClient) -> ProviderMetadata:
        metadata, max_age = await self._fetch(key, client)
        now = self._clock()
        self._entries[key] = _Cached(metadata, now + REFRESH_AT * max_age, now + max_age)
        return metadata

    async def _refresh(self, key: str, client: httpx.AsyncClient) -> None:
        try:
            async with self._locks.setdefault(key, asyncio.Lock()):
                await self._store(key, client)
        except Exception as exc:  # a background task: report, keep the cached document
            cached = self._entries.get(key)
            if cached is not None:
                cached.refresh_at = self._clock() + REFRESH_RETRY
            logger.warning(
                "background discovery refresh for %s failed (%s); the cached document serves until it expires",
                key,
                getattr(exc, "code", type(exc).__name__),
            )
        finally:
            self._refreshing.pop(key, None)

    async def _fetch(self, issuer: str, client: httpx.AsyncClient) -> tuple[ProviderMetadata, float]:
        urls = candidate_urls(issuer)
        for index, url in enumerate(urls):
            response = await self._get(issuer, url, client)
            last = index == len(urls) - 1
            if 400 <= response.status_code < 500 and not last:
                continue
            if response.status_code != 200:
                raise DiscoveryError(
                    f"discovery at {url} answered {response.status_code}",
                    issuer=issuer,
                    url=url,
                    code=f"http_{response.status_code}",
                    status=response.status_code,
                    retryable=response.status_code in (429, 500, 502, 503, 504),
                )
            return self._parse(issuer, url, response), _max_age(response.headers)
        raise AssertionError("unreachable: the last candidate URL always returns or raises")  # pragma: no cover

    @staticmethod
    async def _get(issuer: str, url: str, client: httpx.AsyncClient) -> httpx.Response:
        started = time.monotonic()
        path = urlsplit(url).path
        try:
            response = await client.get(url, headers={"Accept": "application/json"})
        except httpx.TimeoutException as exc:
            logger.info("oidc discovery GET %s -> no answer (timeout)", path)
            raise DiscoveryError(
                f"discovery at {url} timed out", issuer=issuer, url=url, code="timeout", retryable=True
            ) from exc
        except httpx.HTTPError as exc:
            logger.info("oidc discovery GET %s -> no answer (%s)", path, type(exc).__name__)
            raise DiscoveryError(
                f"discovery at {url} is unreachable ({type(exc).__name__})",
                issuer=issuer,
                url=url,
                code="connect_error",
                retryable=True,
            ) from exc
        logger.info(
            "oidc discovery GET %s -> %s in %.0f ms", path, response.status_code, (time.monotonic() - started) * 1000
        )
        return response

    @staticmethod
    def _parse(issuer: str, url: str, response: httpx.Response) -> ProviderMetadata:
        try:
            document = json.loads(response.content)
        except ValueError as exc:
            raise DiscoveryError(
                f"discovery at {url} did not answer JSON", issuer=issuer, url=url, code="invalid_response", status=200
            ) from exc
        if not isinstance(document, dict) or not isinstance(document.get("issuer"), str):
            raise DiscoveryError(
                f"discovery at {url} has no issuer", issuer=issuer, url=url, code="invalid_response", status=200
            )
        if document["issuer"] != issuer:
            raise DiscoveryError(
                f"the discovery document names issuer {document['issuer']!r}, not the configured {issuer!r}",
                issuer=issuer,
                url=url,
                code="issuer_mismatch",
                status=200,
            )
        for name in _ENDPOINTS:
            value = document.get(name)
            if isinstance(value, str) and value:
                try:
                    check_https_url(value, max_length=2048, what=name)
                except ValueError as exc:
                    # keystile sends client secrets and tokens to these: the issuer's https rule holds for them too
                    raise DiscoveryError(
                        f"the discovery document's {name} is refused: {exc}",
                        issuer=issuer,
                        url=url,
                        code="invalid_response",
                        status=200,
                    ) from exc
        return ProviderMetadata(issuer=issuer, raw=document, source_url=url)
