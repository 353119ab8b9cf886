"""Client-credentials exchange results shared between gateways through Redis (contracts/gateway.md §5.3).

With `--redis-url`, a gateway that has no usable token for (strategy, client_id, secret) looks in Redis before it
asks the IdP, and only the gateway holding a short Redis lock for that key makes the exchange: the others wait for
its result. One exchange per client per token lifetime across the fleet, and one refresh.

What Redis holds: the key is `keystile:xc:` + HMAC-SHA256(shared_cache_key, strategy id, client_id, SHA-256 of the
secret), so neither client ids nor secret hashes appear; the value is AES-256-GCM under the snapshot's
`shared_cache_key` with the Redis key as associated data (a value cannot be moved to another key), and it expires
with the token. A rejected secret is shared for the same 10 s as the local negative cache.

Redis is an optimisation, never a dependency: every call has a 250 ms budget, and after a failure the gateway uses
its local cache alone for 5 s before it tries Redis again (one warning per outage).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.asyncio.lock import Lock
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from keystile.gateway.metrics import GatewayMetrics

__all__ = ["CALL_BUDGET", "SharedResult", "SharedTokens"]

log = logging.getLogger("keystile.gateway.shared")

CALL_BUDGET = 0.25
PAUSE_AFTER_FAILURE = 5.0
LOCK_TTL = 6.0  # the exchange budget (5 s) and a margin: a crashed holder frees the key by itself
POLL_EVERY = 0.02
PREFIX = "keystile:xc:"
_FORMAT = b"\x01"


@dataclass(frozen=True, slots=True)
class SharedResult:
    """What another gateway left: a token (`access_token` set) or a rejection (`rejected_until` set)."""

    access_token: str | None = None
    obtained_at: float = 0.0
    expires_at: float = 0.0
    refresh_at: float = 0.0
    rejected_until: float | None = None


class SharedTokens:
    """Encrypted exchange results and exchange locks in Redis, keyed per (strategy, client, secret)."""

    def __init__(
        self,
        url: str,
        metrics: GatewayMetrics,
        *,
        clock: Callable[[], float] = time.time,
        client: aioredis.Redis | None = None,
    ) -> None:
        self._redis = client or aioredis.Redis.from_url(
            url,
            socket_timeout=CALL_BUDGET,
            socket_connect_timeout=CALL_BUDGET,
            retry=Retry(NoBackoff(), 0),  # a failed call falls back to the local cache, never waits for Redis
            health_check_interval=30,
        )
        self._metrics = metrics
        self._clock = clock
        self._paused_until = 0.0
        self.state = "unknown"  # ok | down | unknown: shown on /status

    async def close(self) -> None:
        await self._redis.aclose()

    # -- naming and sealing ------------------------------------------------------------------------------
    @staticmethod
    def name(cache_key: bytes, strategy_id: str, client_id: str, secret_digest: bytes) -> str:
        material = b"\0".join((strategy_id.encode(), client_id.encode(), secret_digest))
        return PREFIX + hmac.new(cache_key, material, hashlib.sha256).hexdigest()

    @staticmethod
    def _seal(cache_key: bytes, name: str, document: dict[str, Any]) -> bytes:
        nonce = os.urandom(12)
        body = json.dumps(document, separators=(",", ":")).encode()
        return _FORMAT + nonce + AESGCM(cache_key).encrypt(nonce, body, name.encode())

    def _open(self, cache_key: bytes, name: str, raw: bytes | str) -> SharedResult | None:
        try:
            if not isinstance(raw, bytes) or raw[:1] != _FORMAT:
                raise ValueError("unknown format")
            doc = json.loads(AESGCM(cache_key).decrypt(raw[1:13], raw[13:], name.encode()))
            if "x" in doc:
                return SharedResult(rejected_until=float(doc["x"]))
            return SharedResult(
                access_token=str(doc["t"]),
                obtained_at=float(doc["o"]),
                expires_at=float(doc["e"]),
                refresh_at=float(doc["r"]),
            )
        except (InvalidTag, ValueError, KeyError, TypeError):
            # another installation's key, or a value not written by a gateway: never used
            self._metrics.cache_event("shared_exchange", "invalid")
            return None

    # -- Redis calls, each within CALL_BUDGET ----------------------------------------------------------------
    def available(self) -> bool:
        return self._clock() >= self._paused_until

    def _failed(self, exc: BaseException) -> None:
        if self.state != "down":
            log.warning(
                "Redis unavailable (%s); the shared token cache is paused for %.0f s, local caches serve alone",
                type(exc).__name__,
                PAUSE_AFTER_FAILURE,
            )
        self.state = "down"
        self._paused_until = self._clock() + PAUSE_AFTER_FAILURE
        self._metrics.cache_event("shared_exchange", "error")

    def _succeeded(self) -> None:
        if self.state == "down":
            log.info("Redis reachable again; the shared token cache is back")
        self.state = "ok"

    async def read(self, cache_key: bytes, name: str) -> SharedResult | None:
        """The shared result for `name`, or None (absent, unreadable, or Redis unavailable)."""
        if not self.available():
            return None
        try:
            async with asyncio.timeout(CALL_BUDGET):
                raw = await self._redis.get(name)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return None
        self._succeeded()
        return None if raw is None else self._open(cache_key, name, raw)

    async def write_token(
        self, cache_key: bytes, name: str, access_token: str, obtained_at: float, expires_at: float, refresh_at: float
    ) -> None:
        ttl = expires_at - self._clock()
        if ttl <= 0:
            return
        doc = {"t": access_token, "o": obtained_at, "e": expires_at, "r": refresh_at}
        await self._set(name, self._seal(cache_key, name, doc), ttl)

    async def write_rejection(self, cache_key: bytes, name: str, until: float) -> None:
        ttl = until - self._clock()
        if ttl > 0:
            await self._set(name, self._seal(cache_key, name, {"x": until}), ttl)

    async def _set(self, name: str, value: bytes, ttl: float) -> None:
        if not self.available():
            return
        try:
            async with asyncio.timeout(CALL_BUDGET):
                await self._redis.set(name, value, px=max(1, int(ttl * 1000)))
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return
        self._succeeded()

    async def lock(self, name: str) -> Lock | None:
        """The exchange lock for `name` when this gateway got it; None when another holds it or Redis is away."""
        if not self.available():
            return None
        lock = self._redis.lock(name + ":lock", timeout=LOCK_TTL, blocking=False, thread_local=False)
        try:
            async with asyncio.timeout(CALL_BUDGET):
                acquired = await lock.acquire()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return None
        self._succeeded()
        return lock if acquired else None

    async def unlock(self, lock: Lock) -> None:
        try:
            async with asyncio.timeout(CALL_BUDGET):
                await lock.release()
        except (RedisError, OSError, TimeoutError):  # expired (LockNotOwnedError) or Redis away: it expires anyway
            pass

    async def wait(self, cache_key: bytes, name: str, deadline: float, newer_than: float) -> SharedResult | None:
        """Wait while another gateway holds the lock for `name`: its result (a rejection, or a token obtained after
        `newer_than`), or None when it let go without one or `deadline` (monotonic) passed."""
        lock_name = name + ":lock"
        while self.available() and time.monotonic() < deadline:
            try:
                async with asyncio.timeout(CALL_BUDGET):
                    raw, held = await self._redis.mget([name, lock_name])
            except (RedisError, OSError, TimeoutError) as exc:
                self._failed(exc)
                return None
            if raw is not None:
                found = self._open(cache_key, name, raw)
                if found is not None and (found.rejected_until is not None or found.obtained_at > newer_than):
                    return found
            if held is None:
                return None
            await asyncio.sleep(POLL_EVERY)
        return None
