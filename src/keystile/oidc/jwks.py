"""JWKS cache with kid-miss refetch and last-good keys (contracts/gateway.md §5.7).

- Documents are kept for their `Cache-Control: max-age`, clamped to 5 min – 24 h (default 1 h), and
  refreshed in the background once 80 % of that lifetime has passed.
- An unknown `kid` refetches the set at most once per 30 s per JWKS URL (scheduled refreshes do not count,
  so a key published just after a fetch is still picked up at once).
- A failed fetch keeps the last good keys in use (logged, counted): an IdP rotating its keys, or going
  away for a while, never fails a request signed with a key it published.
- One fetch in flight per URL (single-flight).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from keystile.domain.errors import KeystileError
from keystile.oidc.tokens import JsonWebKey

__all__ = [
    "KID_MISS_INTERVAL",
    "JwksCache",
    "JwksUnavailableError",
    "cache_lifetime",
]

log = logging.getLogger("keystile.oidc.jwks")

KID_MISS_INTERVAL = 30.0
MIN_LIFETIME = 300.0
MAX_LIFETIME = 86400.0
DEFAULT_LIFETIME = 3600.0
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)

#: observer(jwks_uri, kind, outcome) – kind "jwks" (outcome "ok" / "error") or "kid_miss" (outcome "")
Observer = Callable[[str, str, str], None]


def cache_lifetime(headers: Mapping[str, str]) -> float:
    """Seconds to keep a discovery or JWKS document: `max-age` clamped to 5 min – 24 h, default 1 h."""
    match = _MAX_AGE.search(headers.get("cache-control", ""))
    if match is None:
        return DEFAULT_LIFETIME
    return min(MAX_LIFETIME, max(MIN_LIFETIME, float(match.group(1))))


class JwksUnavailableError(KeystileError):
    """No key set could be fetched and none is cached (the gateway answers 503)."""


@dataclass
class _Entry:
    keys: list[JsonWebKey] = field(default_factory=list)
    fetched_at: float = 0.0  # monotonic; 0 = never fetched successfully
    expires_at: float = 0.0
    lifetime: float = DEFAULT_LIFETIME
    last_attempt: float = -1e18
    last_miss_fetch: float = -1e18
    inflight: asyncio.Future[None] | None = None
    refresh_task: asyncio.Task[None] | None = None


class JwksCache:
    """Key sets by JWKS URL. Uses an injected `httpx.AsyncClient` with its own timeouts."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.monotonic,
        kid_miss_interval: float = KID_MISS_INTERVAL,
    ) -> None:
        self._client = client
        self._observer = observer or (lambda uri, kind, outcome: None)
        self._clock = clock
        self._kid_miss_interval = kid_miss_interval
        self._entries: dict[str, _Entry] = {}

    async def keys(self, jwks_uri: str, kid: str | None) -> list[JsonWebKey]:
        """All keys of the set, refetched first when stale, or when `kid` is unknown (rate-limited).

        Raises:
            JwksUnavailableError: nothing usable is cached and the fetch failed.
        """
        entry = self._entries.get(jwks_uri)
        if entry is None:
            entry = self._entries[jwks_uri] = _Entry()
        now = self._clock()
        if entry.fetched_at == 0.0 or now >= entry.expires_at:
            await self._fetch(jwks_uri, entry)
        elif kid is not None and all(k.kid != kid for k in entry.keys):
            self._observer(jwks_uri, "kid_miss", "")
            if now - entry.last_miss_fetch >= self._kid_miss_interval:
                entry.last_miss_fetch = now
                await self._fetch(jwks_uri, entry)
        elif now >= entry.fetched_at + 0.8 * entry.lifetime and entry.refresh_task is None:
            entry.refresh_task = asyncio.get_running_loop().create_task(self._background(jwks_uri, entry))
        if entry.fetched_at == 0.0:
            raise JwksUnavailableError(f"the key set at {jwks_uri} could not be fetched")
        return entry.keys

    async def _background(self, jwks_uri: str, entry: _Entry) -> None:
        try:
            await self._fetch(jwks_uri, entry)
        finally:
            entry.refresh_task = None

    async def _fetch(self, jwks_uri: str, entry: _Entry) -> None:
        if entry.inflight is not None:
            await asyncio.shield(entry.inflight)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry.inflight = fut
        try:
            await self._do_fetch(jwks_uri, entry)
        finally:
            entry.inflight = None
            fut.set_result(None)

    async def _do_fetch(self, jwks_uri: str, entry: _Entry) -> None:
        entry.last_attempt = self._clock()
        try:
            response = await self._client.get(jwks_uri, headers={"Accept": "application/json"})
            if response.status_code != 200:
                raise ValueError(f"status {response.status_code}")
            document: Any = response.json()
            raw_keys = document.get("keys") if isinstance(document, dict) else None
            if not isinstance(raw_keys, list):
                raise ValueError("no keys array")
        except (httpx.HTTPError, ValueError) as exc:
            self._observer(jwks_uri, "jwks", "error")
            if entry.fetched_at:
                log.warning("JWKS fetch from %s failed (%s); keeping the last good keys", jwks_uri, exc)
                # Do not hammer a failing IdP: try again after the kid-miss interval.
                entry.expires_at = max(entry.expires_at, self._clock() + self._kid_miss_interval)
            else:
                log.warning("JWKS fetch from %s failed (%s); no keys cached", jwks_uri, exc)
            return
        keys = [k for k in (JsonWebKey.from_jwk(item) for item in raw_keys if isinstance(item, dict)) if k]
        lifetime = cache_lifetime(response.headers)
        now = self._clock()
        entry.keys = keys
        entry.fetched_at = now
        entry.lifetime = lifetime
        entry.expires_at = now + lifetime
        self._observer(jwks_uri, "jwks", "ok")
