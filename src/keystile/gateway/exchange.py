"""Client-credentials exchange with its cache (contracts/gateway.md §5.3).

Key (strategy id, client_id, SHA-256 of the secret). A token is served until 30 s before its expiry;
after 80 % of its lifetime the next request starts one background exchange (refresh-ahead); one exchange
per key is in flight at a time (single-flight); while the IdP is unreachable a cached token is served up to
its real expiry; a rejected secret is answered from cache for 10 s; entries older than the application's
`credentials_not_before` are ignored; at most 100,000 entries (LRU).

With Redis (`gateway.shared`) the cache and the single flight reach across gateways: a gateway takes another's
token or rejection, and one gateway at a time exchanges for a key.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from keystile.domain.errors import AuthenticationError
from keystile.gateway.idp import EXCHANGE_BUDGET, IdpClient, IdpUnavailableError
from keystile.gateway.metrics import GatewayMetrics
from keystile.gateway.shared import SharedResult, SharedTokens
from keystile.gateway.tables import AppEntry, CompiledStrategy
from keystile.oidc.tokens import parse_unverified

__all__ = ["ExchangeCache", "SecretRejectedError", "basic_form"]

log = logging.getLogger("keystile.gateway.exchange")

DEFAULT_LIFETIME = 300.0
SERVE_MARGIN = 30.0
REFRESH_AT = 0.8
NEGATIVE_TTL = 10.0
MAX_ENTRIES = 100_000
OPENID_SCOPES = frozenset({"openid", "profile", "email", "address", "phone", "offline_access"})

Key = tuple[str, str, bytes]


class SecretRejectedError(AuthenticationError):
    """The IdP refused the client's credentials (401)."""


@dataclass(slots=True)
class _Token:
    access_token: str
    obtained_at: float
    expires_at: float
    refresh_at: float


@dataclass(frozen=True, slots=True)
class _Request:
    key: Key
    strategy: CompiledStrategy
    app: AppEntry
    client_id: str
    client_secret: str
    shared_key: bytes | None


def basic_form(client_id: str, client_secret: str) -> tuple[str, str]:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding."""
    from urllib.parse import quote_plus

    return quote_plus(client_id), quote_plus(client_secret)


class ExchangeCache:
    def __init__(
        self,
        idp: IdpClient,
        metrics: GatewayMetrics,
        *,
        clock: Callable[[], float] = time.time,
        max_entries: int = MAX_ENTRIES,
        shared: SharedTokens | None = None,
    ) -> None:
        """`shared`: Redis shared between gateways (`--redis-url`); used when the snapshot has a `shared_cache_key`."""
        self._idp = idp
        self._metrics = metrics
        self._clock = clock
        self._max = max_entries
        self._shared = shared
        self._entries: collections.OrderedDict[Key, _Token] = collections.OrderedDict()
        self._negative: dict[Key, float] = {}
        self._inflight: dict[Key, asyncio.Task[tuple[str, float]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def token(
        self,
        strategy: CompiledStrategy,
        app: AppEntry,
        client_id: str,
        client_secret: str,
        *,
        shared_key: bytes | None = None,
    ) -> tuple[str, float]:
        """An access token for these credentials and its expiry (epoch seconds).

        `shared_key` (the snapshot's `shared_cache_key`) turns on the Redis cache shared between gateways.

        Raises:
            SecretRejectedError: the IdP refused them (now or within the last 10 s).
            IdpUnavailableError: the IdP is needed and unreachable, and nothing usable is cached.
        """
        key: Key = (strategy.id, client_id, hashlib.sha256(client_secret.encode()).digest())
        now = self._clock()
        negative = self._negative.get(key)
        if negative is not None:
            if negative > now:
                raise SecretRejectedError("rejected secret (cached)")
            del self._negative[key]
        cache = _caches(strategy)
        entry = self._entries.get(key) if cache else None
        if entry is not None and app.not_before is not None and entry.obtained_at < app.not_before:
            del self._entries[key]
            entry = None
        request = _Request(key, strategy, app, client_id, client_secret, shared_key if cache else None)
        if entry is not None and now < entry.expires_at - SERVE_MARGIN:
            self._entries.move_to_end(key)
            self._metrics.cache_event("exchange", "hit")
            if now >= entry.refresh_at and key not in self._inflight:
                self._metrics.cache_event("exchange", "refresh")
                self._start(request, refreshing=True)
            return entry.access_token, entry.expires_at
        self._metrics.cache_event("exchange", "miss")
        task = self._inflight.get(key) or self._start(request, refreshing=False)
        try:
            return await asyncio.shield(task)
        except IdpUnavailableError:
            if entry is not None and self._clock() < entry.expires_at:
                return entry.access_token, entry.expires_at
            raise

    def _start(self, request: _Request, *, refreshing: bool) -> asyncio.Task[tuple[str, float]]:
        task = asyncio.get_running_loop().create_task(self._obtain(request, refreshing))
        self._inflight[request.key] = task
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[tuple[str, float]]) -> None:
        for key, value in list(self._inflight.items()):
            if value is task:
                del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: background refreshes report through logs and metrics

    # -- through the shared cache ----------------------------------------------------------------------------
    async def _obtain(self, request: _Request, refreshing: bool) -> tuple[str, float]:
        """A token from the shared cache, from the gateway exchanging for this key right now, or from the IdP."""
        shared, cache_key = self._shared, request.shared_key
        if shared is None or cache_key is None or not shared.available():
            token = await self._exchange(request)
            return token.access_token, token.expires_at
        name = SharedTokens.name(cache_key, *request.key)
        seen = await shared.read(cache_key, name)
        adopted = self._adopt(request, seen, refreshing)
        if adopted is not None:
            return adopted
        lock = await shared.lock(name)
        if lock is None and shared.available():  # another gateway is exchanging for this key: take its answer
            self._metrics.cache_event("shared_exchange", "wait")
            deadline = time.monotonic() + EXCHANGE_BUDGET + 0.5
            found = await shared.wait(cache_key, name, deadline, newer_than=seen.obtained_at if seen else 0.0)
            adopted = self._adopt(request, found, refreshing)
            if adopted is not None:
                return adopted
            lock = await shared.lock(name)  # it gave up without an answer (IdP away): try ourselves
        self._metrics.cache_event("shared_exchange", "miss")
        try:
            try:
                token = await self._exchange(request)
            except SecretRejectedError:
                until = self._negative.get(request.key)
                if until is not None:
                    await shared.write_rejection(cache_key, name, until)
                raise
            await shared.write_token(
                cache_key, name, token.access_token, token.obtained_at, token.expires_at, token.refresh_at
            )
            return token.access_token, token.expires_at
        finally:
            if lock is not None:
                await shared.unlock(lock)

    def _adopt(self, request: _Request, found: SharedResult | None, refreshing: bool) -> tuple[str, float] | None:
        """Use what another gateway left, when it fits: a live rejection, or a token fresh enough.

        Raises:
            SecretRejectedError: another gateway's exchange with this secret was refused less than 10 s ago.
        """
        if found is None:
            return None
        now = self._clock()
        if found.rejected_until is not None:
            if found.rejected_until <= now:
                return None
            self._negative[request.key] = found.rejected_until
            self._entries.pop(request.key, None)
            self._metrics.cache_event("shared_exchange", "hit")
            raise SecretRejectedError("rejected secret (shared)")
        not_before = request.app.not_before
        if found.access_token is None or (not_before is not None and found.obtained_at < not_before):
            return None
        if now >= (found.refresh_at if refreshing else found.expires_at - SERVE_MARGIN):
            return None
        self._metrics.cache_event("shared_exchange", "hit")
        self._keep(request.key, _Token(found.access_token, found.obtained_at, found.expires_at, found.refresh_at))
        return found.access_token, found.expires_at

    # -- at the IdP ----------------------------------------------------------------------------------------
    async def _exchange(self, request: _Request) -> _Token:
        strategy, client_id, client_secret = request.strategy, request.client_id, request.client_secret
        oidc = strategy.oidc
        assert oidc is not None
        meta = await self._idp.metadata(strategy)
        endpoint = meta.token_endpoint
        if endpoint is None:
            raise IdpUnavailableError(f"{strategy.issuer} publishes no token_endpoint")
        form = {"grant_type": "client_credentials"}
        scopes = [s for s in oidc.scopes if s not in OPENID_SCOPES]
        if scopes:
            form["scope"] = " ".join(scopes)
        form.update(oidc.settings.token_post_args)
        methods = meta.get("token_endpoint_auth_methods_supported")
        auth: tuple[str, str] | None
        if (
            isinstance(methods, list)
            and methods
            and "client_secret_basic" not in methods
            and ("client_secret_post" in methods)
        ):
            form["client_id"] = client_id
            form["client_secret"] = client_secret
            auth = None
        else:
            auth = basic_form(client_id, client_secret)
        answer = await self._idp.post_form(strategy, "token", endpoint, form, auth)
        now = self._clock()
        if answer.document is None:
            self._negative[request.key] = now + NEGATIVE_TTL
            self._entries.pop(request.key, None)
            log.info("client credentials of %s refused by %s: %s", client_id, strategy.issuer, answer.error)
            raise SecretRejectedError("rejected secret")
        access_token = answer.document.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise IdpUnavailableError("the token endpoint answered without access_token")
        expires_in = answer.document.get("expires_in")
        lifetime = (
            float(expires_in)
            if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0
            else DEFAULT_LIFETIME
        )
        expires_at = now + lifetime
        jwt = parse_unverified(access_token)
        if jwt is not None:
            exp = jwt.claims.get("exp")
            if isinstance(exp, int | float) and not isinstance(exp, bool) and exp < expires_at:
                expires_at = float(exp)
        token = _Token(access_token, now, expires_at, now + REFRESH_AT * (expires_at - now))
        if _caches(strategy):
            self._keep(request.key, token)
        return token

    def _keep(self, key: Key, token: _Token) -> None:
        self._entries[key] = token
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
            self._metrics.cache_event("exchange", "evict")


def _caches(strategy: CompiledStrategy) -> bool:
    return strategy.oidc is not None and strategy.oidc.settings.cache_tokens
