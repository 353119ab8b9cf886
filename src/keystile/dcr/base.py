"""The `DcrProvider` protocol and `BaseProvider`, the shared machinery every adapter builds on.

How a vendor adapter plugs in (contracts/dcr-providers.md §1):

1. Subclass `BaseProvider` in `keystile/dcr/<type>.py` and declare data, not branches:

   - `provider_type: ClassVar[str]` – the wire value (`"okta"`, `"azureAd"`, …);
   - `CAPABILITIES: ClassVar[Capabilities]` – the row of §1.2 (override the `capabilities` property only when it
     depends on config, as `http` and `rfc7591` do);
   - `SECRET_KEYS: ClassVar[tuple[str, ...]]` – the write-only `dcr_config` keys (`dcr_token`, …);
   - `REQUIRED_SETTINGS` / `REQUIRED_SECRETS` – keys the registry insists on when building the adapter.

2. Implement the operations of the protocol you support: `register`, `deregister`, `rotate_secret`,
   `revoke_secret`, `on_event`, `verify`, `list_clients`. `probe` has a working default (client credentials at the
   discovery `token_endpoint` with the strategy's scopes and `token_post_args`); override `probe_token_url` or
   `probe` for vendor specifics. Defaults of the others raise `ProviderError(code="unsupported_operation")`.

3. Talk to the IdP only through `self.request(operation, method, url, idempotent=…, …)`. It retries what §1.4
   allows (idempotent requests, never-sent ones, 429s; 3 attempts, full-jitter backoff), logs one line per
   attempt (no headers, no bodies), returns 2xx answers and those in `accept=` (e.g. `{404}` for "already
   gone"), and raises every other outcome as a classified, redacted `ProviderError` chained `from` the httpx
   exception. Read JSON answers with `self.json_object(response, operation, required=…)`. The operations named
   in `TIMED_OPERATIONS` are wrapped automatically (`__init_subclass__`): all requests of one call share one
   30 s deadline (`self.deadline`), retries included. Requests that must not be retried blindly (creates,
   rotations) pass `idempotent=False`; a create that may have landed raises with `outcome_unknown=True`.

4. Tokens: `self.client_credentials(...)` gets a client-credentials token; `cache=True` keeps it in the injected
   per-process `TokenCache` until `expires_in − 60 s` (single flight); `force_refresh=True` after a 401 from a
   management API. Issuer metadata: `await self.discovery()`.

5. Errors you raise yourself: `raise self.error(operation, code=…, description=…)` (fills type and id, redacts
   the description with every secret the adapter holds plus `known=`).

6. Register the class in `keystile/dcr/registry.py` (`ADAPTERS`) and give the shared suite a harness
   (`HARNESSES` in tests/integration/dcr/test_shared_suite.py): how to build the adapter on a transport, and
   which request is the registration and which the deletion.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import hashlib
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Coroutine, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Concatenate, NoReturn, ParamSpec, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from keystile.dcr.naming import registration_scopes
from keystile.dcr.redact import redact
from keystile.dcr.types import (
    AppMetadata,
    Capabilities,
    ClientRef,
    ClientUpdate,
    HookEvent,
    IdpClient,
    IssuedClient,
    ProbeResult,
    RotatedSecret,
    RotateMode,
    StrategyInfo,
    VerifyReport,
)
from keystile.domain.errors import ProviderError
from keystile.oidc.discovery import DiscoveryCache, DiscoveryError, ProviderMetadata, normalize_issuer

__all__ = [
    "DEADLINE",
    "DEFAULT_TIMEOUT",
    "MAX_ATTEMPTS",
    "TIMED_OPERATIONS",
    "AccessToken",
    "BaseProvider",
    "DcrProvider",
    "ParsedError",
    "ProviderConfig",
    "TokenCache",
    "backoff_delay",
    "operation_deadline",
    "parse_error_body",
    "parse_time",
    "quiet_http_loggers",
    "read_time",
    "retry_after_seconds",
    "translate_transport_error",
]

logger = logging.getLogger("keystile.dcr")

MAX_ATTEMPTS = 3
DEADLINE = 30.0
#: The timeouts §1.4 asks of the injected client (settings may override): `httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)`.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=5.0)
TOKEN_EARLY_EXPIRY = 60.0
_REQUEST_ID_HEADERS = ("x-okta-request-id", "request-id", "x-ms-request-id", "x-request-id")
_TRANSIENT_5XX = frozenset({500, 502, 503, 504})


@runtime_checkable
class DcrProvider(Protocol):
    """What services call on an adapter (§1.2). Every failure is a `ProviderError`."""

    provider_type: ClassVar[str]

    @property
    def provider_id(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    async def register(self, app: AppMetadata) -> IssuedClient: ...

    async def deregister(self, ref: ClientRef) -> None: ...

    async def rotate_secret(self, ref: ClientRef, mode: RotateMode = "replace") -> RotatedSecret: ...

    async def revoke_secret(self, ref: ClientRef, credential_id: str) -> None: ...

    async def on_event(self, ref: ClientRef, event: HookEvent) -> ClientUpdate | None: ...

    async def probe(
        self, client_id: str, client_secret: SecretStr, strategy: StrategyInfo | None = None
    ) -> ProbeResult: ...

    async def verify(self, trial: bool = False, app: AppMetadata | None = None) -> VerifyReport: ...

    def list_clients(self) -> AsyncIterator[IdpClient]: ...


@dataclass(frozen=True)
class ProviderConfig:
    """A provider row as an adapter needs it: plain settings (`dcr_config` minus secrets) and decrypted secrets."""

    provider_type: str
    provider_id: str
    issuer: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, SecretStr] = field(default_factory=dict, repr=False)

    def setting(self, name: str, default: Any = None) -> Any:
        value = self.settings.get(name)
        return default if value is None else value

    def secret(self, name: str) -> SecretStr | None:
        return self.secrets.get(name)


@dataclass(frozen=True)
class AccessToken:
    """A token from a token endpoint; the value is a `SecretStr`."""

    value: SecretStr
    token_type: str = "Bearer"
    expires_in: float | None = None
    scope: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class TokenCache:
    """Per-process cache of client-credentials tokens, single flight per key (§2.2).

    A token is kept until `expires_in − 60 s`; one without `expires_in` is not kept.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[AccessToken, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        now = self._clock()
        return sum(1 for _, expiry in self._entries.values() if expiry > now)

    async def get(
        self, key: str, fetch: Callable[[], Awaitable[AccessToken]], *, force_refresh: bool = False
    ) -> AccessToken:
        """The cached token for `key`, or the result of one `fetch()` shared by concurrent callers."""
        if force_refresh:
            self.drop(key)
        entry = self._entries.get(key)
        if entry is not None and entry[1] > self._clock():
            return entry[0]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._entries.get(key)
            if entry is not None and entry[1] > self._clock():
                return entry[0]
            token = await fetch()
            if token.expires_in is not None and token.expires_in > TOKEN_EARLY_EXPIRY:
                self._entries[key] = (token, self._clock() + token.expires_in - TOKEN_EARLY_EXPIRY)
            return token


@dataclass(frozen=True)
class ParsedError:
    """`code`, `description` and request id read from an IdP error body (§1.3)."""

    code: str
    description: str
    idp_request_id: str | None = None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def parse_error_body(status: int, content: bytes) -> ParsedError:
    """The one body parser of §1.3, first match wins: Graph, Okta management, Auth0 management, RFC 6749, else
    `http_<status>` with the first 200 characters of the body. Descriptions are not yet redacted."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "code" in error:
            inner = error.get("innerError") or error.get("innererror") or {}
            request_id = inner.get("request-id") if isinstance(inner, dict) else None
            return ParsedError(_text(error["code"]), _text(error.get("message", "")), _opt_str(request_id))
        if "errorCode" in body and "errorSummary" in body:
            parts = [_text(body["errorSummary"])]
            causes = body.get("errorCauses")
            if isinstance(causes, list):
                parts += [_text(c["errorSummary"]) for c in causes if isinstance(c, dict) and "errorSummary" in c]
            return ParsedError(_text(body["errorCode"]), ": ".join(parts), _opt_str(body.get("errorId")))
        if "statusCode" in body and ("error" in body or "message" in body):
            code = body.get("errorCode") or body.get("error") or f"http_{status}"
            return ParsedError(_text(code), _text(body.get("message", "")))
        if error is not None and error != "":
            description = body.get("error_description", "")
            return ParsedError(
                _text(error),
                "" if description is None else _text(description),
                _opt_str(body.get("correlation_id")),
            )
    return ParsedError(f"http_{status}", content[:200].decode("utf-8", errors="replace"))


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def retry_after_seconds(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or HTTP date), else Okta `X-Rate-Limit-Reset` or Auth0
    `x-ratelimit-reset` (epoch seconds); `None` when none is usable."""
    now = time.time() if now is None else now
    value = headers.get("retry-after")
    if value is not None:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                return max(0.0, when.timestamp() - now)
    for name in ("x-rate-limit-reset", "x-ratelimit-reset"):
        reset = headers.get(name)
        if reset is not None:
            try:
                return max(0.0, float(reset) - now)
            except ValueError:
                continue
    return None


def quiet_http_loggers() -> None:
    """Keep `httpx` and `httpcore` at WARNING: their INFO lines carry full URLs, queries included (§1.4)."""
    for name in ("httpx", "httpcore"):
        log = logging.getLogger(name)
        if log.getEffectiveLevel() < logging.WARNING or log.level < logging.WARNING:
            log.setLevel(logging.WARNING)


def backoff_delay(attempt: int, uniform: Callable[[float, float], float] = random.uniform) -> float:
    """Full-jitter backoff after attempt `attempt` (1-based): `uniform(0, min(8, 0.5 × 2^attempt))`."""
    return uniform(0.0, min(8.0, 0.5 * 2**attempt))


def parse_time(value: Any) -> datetime | None:
    """An aware datetime from epoch seconds, a numeric string or an RFC 3339 date-time; `0`/`None`/`""` → `None`.

    Raises:
        ValueError: anything else.
    """
    if value is None or value == "" or isinstance(value, bool):
        if isinstance(value, bool):
            raise ValueError(f"not a time: {value!r}")
        return None
    if isinstance(value, int | float):
        return None if value == 0 else datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
        return None if number == 0 else datetime.fromtimestamp(number, tz=UTC)
    raise ValueError(f"not a time: {value!r}")


#: The monotonic time by which the operation in progress (in this task) must be done; `None` outside one.
_OPERATION_DEADLINE: ContextVar[float | None] = ContextVar("keystile_dcr_operation_deadline", default=None)
#: Operations whose requests share one deadline (§1.4). `verify` is not one: each of its steps has its own.
TIMED_OPERATIONS: tuple[str, ...] = ("register", "deregister", "rotate_secret", "revoke_secret", "on_event", "probe")

_Self = TypeVar("_Self", bound="BaseProvider")
_P = ParamSpec("_P")
_R = TypeVar("_R")


def operation_deadline(
    func: Callable[Concatenate[_Self, _P], Awaitable[_R]],
) -> Callable[Concatenate[_Self, _P], Coroutine[Any, Any, _R]]:
    """Give an adapter operation one deadline (`self.deadline`) for all of its requests, retries included.

    Applied by `BaseProvider.__init_subclass__` to every operation in `TIMED_OPERATIONS` a class defines; an
    operation called from inside another (a compensating delete in `register`) shares the outer deadline.
    """

    @functools.wraps(func)
    async def run(self: _Self, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if _OPERATION_DEADLINE.get() is not None:
            return await func(self, *args, **kwargs)
        token = _OPERATION_DEADLINE.set(time.monotonic() + self.deadline)
        try:
            return await func(self, *args, **kwargs)
        finally:
            _OPERATION_DEADLINE.reset(token)

    run.__keystile_deadline__ = True  # type: ignore[attr-defined]
    return run


def read_time(body: Mapping[str, Any], key: str) -> datetime | None:
    """`parse_time` of `body[key]`, `None` when absent or unreadable (an IdP's odd time never fails an operation)."""
    try:
        return parse_time(body.get(key))
    except ValueError:
        return None


# (exception class, code, whether the request may have reached the IdP, retryable when nothing was sent).
# Ordered most specific first; `translate_transport_error` takes the first isinstance match.
_TRANSPORT_ERRORS: tuple[tuple[type[BaseException], str, bool, bool], ...] = (
    (httpx.ConnectTimeout, "timeout", False, True),
    (httpx.PoolTimeout, "timeout", False, True),
    (httpx.ConnectError, "connect_error", False, True),
    (httpx.ProxyError, "connect_error", False, True),
    (httpx.UnsupportedProtocol, "connect_error", False, False),
    (httpx.LocalProtocolError, "connect_error", False, False),
    (httpx.InvalidURL, "connect_error", False, False),
    (httpx.ReadTimeout, "timeout", True, True),
    (httpx.WriteTimeout, "timeout", True, True),
    (httpx.TimeoutException, "timeout", True, True),
    (TimeoutError, "timeout", True, True),
    (httpx.RemoteProtocolError, "connect_error", True, True),
    (httpx.ReadError, "connect_error", True, True),
    (httpx.WriteError, "connect_error", True, True),
    (httpx.CloseError, "connect_error", True, True),
    (httpx.NetworkError, "connect_error", True, True),
    (httpx.DecodingError, "invalid_response", True, False),
    (httpx.TooManyRedirects, "invalid_response", True, False),
    (httpx.HTTPError, "connect_error", True, True),
)
_NOT_RETRIED_WHEN_SENT = frozenset({"invalid_response"})


def translate_transport_error(exc: BaseException, idempotent: bool) -> tuple[str, bool, bool]:
    """`(code, retryable, outcome_unknown)` for an exception raised while talking to the IdP (§1.3).

    Raises:
        TypeError: `exc` is not an httpx error or a timeout.
    """
    for cls, code, may_have_arrived, retry_unsent in _TRANSPORT_ERRORS:
        if isinstance(exc, cls):
            if not may_have_arrived:
                return code, retry_unsent, False
            retryable = idempotent and code not in _NOT_RETRIED_WHEN_SENT
            return code, retryable, not idempotent
    raise TypeError(f"not a transport error: {type(exc).__name__}")


def _describe_transport(exc: BaseException, code: str) -> str:
    if code == "timeout":
        return f"no answer in time ({type(exc).__name__})"
    if code == "invalid_response":
        return f"unreadable answer ({type(exc).__name__})"
    return f"could not reach the IdP ({type(exc).__name__})"


class BaseProvider:
    """Holds the provider config, the injected HTTP client and caches, and the shared HTTP machinery.

    Args:
        config: the provider row (settings and decrypted secrets).
        client: the injected `httpx.AsyncClient` (timeouts set by the caller: connect 5, read 15, write 10, pool 5).
        token_cache: the per-process `TokenCache`.
        discovery: the per-process `DiscoveryCache` (a private one when omitted).
        deadline: seconds an operation's request may take, retries included.
        sleep: awaitable sleep (injectable for tests).
        uniform: random source for the jitter (injectable for tests).
    """

    provider_type: ClassVar[str] = ""
    CAPABILITIES: ClassVar[Capabilities] = Capabilities()
    SECRET_KEYS: ClassVar[tuple[str, ...]] = ()
    REQUIRED_SETTINGS: ClassVar[tuple[str, ...]] = ()
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in TIMED_OPERATIONS:
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "__keystile_deadline__", False):
                setattr(cls, name, operation_deadline(method))

    def __init__(
        self,
        config: ProviderConfig,
        client: httpx.AsyncClient,
        token_cache: TokenCache,
        discovery: DiscoveryCache | None = None,
        *,
        deadline: float = DEADLINE,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        quiet_http_loggers()
        self.config = config
        self.client = client
        self.tokens = token_cache
        self.discovery_cache = discovery if discovery is not None else DiscoveryCache()
        self.deadline = deadline
        self._sleep = sleep
        self._uniform = uniform

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.provider_type} {self.provider_id}>"

    # -- identity --------------------------------------------------------------------------------------------

    @property
    def provider_id(self) -> str:
        return self.config.provider_id

    @property
    def issuer(self) -> str:
        """The configured issuer, normalised (a discovery URL becomes its issuer)."""
        return normalize_issuer(self.config.issuer)

    @property
    def origin(self) -> str:
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def capabilities(self) -> Capabilities:
        return self.CAPABILITIES

    @property
    def display_name(self) -> str:
        """The IdP's name as error sentences use it ("Okta", "the RFC 7591 server")."""
        return ProviderError(provider_type=self.provider_type, operation="").provider_name

    def known_secrets(self, *extra: SecretStr | str | None) -> list[SecretStr | str | None]:
        """Every secret this adapter holds plus `extra`: what `redact` must remove."""
        return [*self.config.secrets.values(), *extra]

    # -- errors ----------------------------------------------------------------------------------------------

    def error(
        self,
        operation: str,
        *,
        code: str,
        description: str = "",
        status: int | None = None,
        retryable: bool = False,
        outcome_unknown: bool = False,
        retry_after: float | None = None,
        idp_request_id: str | None = None,
        known: Collection[SecretStr | str | None] = (),
        extra: dict[str, Any] | None = None,
    ) -> ProviderError:
        """A `ProviderError` of this adapter with a redacted description."""
        return ProviderError(
            provider_type=self.provider_type,
            provider_id=self.provider_id,
            operation=operation,
            status=status,
            code=code,
            description=redact(description, self.known_secrets(*known)),
            retryable=retryable,
            retry_after=retry_after,
            outcome_unknown=outcome_unknown,
            idp_request_id=idp_request_id,
            extra=extra or {},
        )

    def unsupported(self, operation: str, description: str) -> NoReturn:
        """Raise `unsupported_operation` (nothing was sent)."""
        raise self.error(operation, code="unsupported_operation", description=description)

    def status_error(
        self,
        operation: str,
        response: httpx.Response,
        *,
        idempotent: bool,
        known: Collection[SecretStr | str | None] = (),
    ) -> ProviderError:
        """The classified `ProviderError` for an unwanted HTTP answer (§1.3 tables)."""
        status = response.status_code
        parsed = parse_error_body(status, response.content)
        if status == 429:
            retryable, unknown = True, False
        elif status in _TRANSIENT_5XX:
            retryable, unknown = idempotent, not idempotent
        else:
            retryable, unknown = False, False
        return self.error(
            operation,
            status=status,
            code=parsed.code,
            description=parsed.description,
            retryable=retryable,
            outcome_unknown=unknown,
            retry_after=retry_after_seconds(response.headers),
            idp_request_id=parsed.idp_request_id or _header_request_id(response.headers),
            known=known,
        )

    # -- HTTP ------------------------------------------------------------------------------------------------

    async def request(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        idempotent: bool,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        accept: Collection[int] = (),
        known: Collection[SecretStr | str | None] = (),
    ) -> httpx.Response:
        """Send one IdP request with the retries, deadline, logging and error mapping of §1.3/§1.4.

        Returns:
            The response when it is 2xx or its status is in `accept`.

        Raises:
            ProviderError: any other answer, or no answer; chained from the httpx exception. When no answer came
                but an attempt may have reached the IdP (even an idempotent one, whose `outcome_unknown` stays
                `False`), `extra["may_have_landed"]` is `True`: a later DELETE answered 401 is then "already gone".
        """
        path = urlsplit(url).path or "/"
        deadline_at = self._deadline_at(time.monotonic())
        attempt = 0
        landed = False  # some attempt of this request may have reached the IdP without an answer coming back
        while True:
            attempt += 1
            remaining = deadline_at - time.monotonic()
            if remaining <= 0:
                raise self.error(
                    operation,
                    code="timeout",
                    description=f"the {self.deadline:.0f} s deadline of the operation passed before this request",
                    retryable=True,
                )
            sent_at = time.monotonic()
            try:
                async with asyncio.timeout(remaining):
                    response = await self.client.request(
                        method,
                        url,
                        headers=headers,
                        json=json_body,
                        data=form,
                        auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                    )
                    await response.aread()
            except (httpx.HTTPError, httpx.InvalidURL, TimeoutError) as exc:
                code, retryable, unknown = translate_transport_error(exc, idempotent)
                # as if not idempotent, `outcome_unknown` says whether this attempt may have reached the IdP
                landed = landed or translate_transport_error(exc, idempotent=False)[2]
                self._log(operation, method, path, None, sent_at, attempt, None, type(exc).__name__)
                err = self.error(
                    operation,
                    code=code,
                    description=_describe_transport(exc, code),
                    retryable=retryable,
                    outcome_unknown=unknown,
                    known=known,
                    extra={"may_have_landed": True} if landed else None,
                )
                delay = backoff_delay(attempt, self._uniform)
                if not retryable or attempt >= MAX_ATTEMPTS or not _fits(deadline_at, delay):
                    raise err from exc
                await self._sleep(delay)
                continue
            request_id = _header_request_id(response.headers)
            status = response.status_code
            if 200 <= status < 300 or status in accept:
                self._log(operation, method, path, status, sent_at, attempt, request_id)
                # Callers that must tell "a repeated attempt" from "the first one" (RFC 7592 DELETE: 401 after a
                # lost answer means the first attempt landed) read this.
                response.extensions["keystile_attempt"] = attempt
                return response
            err = self.status_error(operation, response, idempotent=idempotent, known=known)
            if landed:  # an earlier attempt may have been carried out, whatever this one was answered
                err.extra["may_have_landed"] = True
            self._log(operation, method, path, status, sent_at, attempt, err.idp_request_id)
            if status == 429 and err.retry_after is not None:
                delay = err.retry_after
            else:
                delay = backoff_delay(attempt, self._uniform)
            if not err.retryable or attempt >= MAX_ATTEMPTS or not _fits(deadline_at, delay):
                raise err from httpx.HTTPStatusError(
                    f"{method} {path} answered {status}", request=response.request, response=response
                )
            await self._sleep(delay)

    def _deadline_at(self, now: float) -> float:
        """When the current request must be done: its own deadline, or the operation's when that comes first."""
        own = now + self.deadline
        operation = _OPERATION_DEADLINE.get()
        return own if operation is None else min(own, operation)

    def _log(
        self,
        operation: str,
        method: str,
        path: str,
        status: int | None,
        sent_at: float,
        attempt: int,
        request_id: str | None,
        failure: str | None = None,
    ) -> None:
        logger.info(
            "idp request %s %s %s %s %s -> %s in %.0f ms attempt=%d idp_request_id=%s",
            self.provider_type,
            self.provider_id,
            operation,
            method,
            path,
            status if status is not None else f"no answer ({failure})",
            (time.monotonic() - sent_at) * 1000,
            attempt,
            request_id or "-",
            extra={
                "dcr_provider_type": self.provider_type,
                "dcr_provider_id": self.provider_id,
                "dcr_operation": operation,
                "http_method": method,
                "url_path": path,
                "http_status": status,
                "attempt": attempt,
                "idp_request_id": request_id,
            },
        )

    def json_list(self, response: httpx.Response, operation: str) -> list[Any]:
        """The answer as a JSON array (list endpoints).

        Raises:
            ProviderError: `invalid_response` when the body is not JSON or not an array.
        """
        try:
            body = json.loads(response.content)
        except ValueError as exc:
            raise self.error(
                operation, status=response.status_code, code="invalid_response", description="the answer is not JSON"
            ) from exc
        if not isinstance(body, list):
            raise self.error(
                operation,
                status=response.status_code,
                code="invalid_response",
                description="the answer is not a JSON array",
            )
        return body

    def json_object(
        self,
        response: httpx.Response,
        operation: str,
        *,
        required: Collection[str] = (),
        outcome_unknown: bool = False,
        known: Collection[SecretStr | str | None] = (),
    ) -> dict[str, Any]:
        """The JSON object of a 2xx answer.

        Raises:
            ProviderError: `invalid_response` when the body is not a JSON object or lacks a `required` field
                (`outcome_unknown` as given: `True` for `register`).
        """
        try:
            body = json.loads(response.content)
        except ValueError as exc:
            raise self.error(
                operation,
                status=response.status_code,
                code="invalid_response",
                description="the answer is not JSON",
                outcome_unknown=outcome_unknown,
                known=known,
            ) from exc
        if not isinstance(body, dict):
            raise self.error(
                operation,
                status=response.status_code,
                code="invalid_response",
                description="the answer is not a JSON object",
                outcome_unknown=outcome_unknown,
                known=known,
            )
        missing = [name for name in required if body.get(name) in (None, "")]
        if missing:
            raise self.error(
                operation,
                status=response.status_code,
                code="invalid_response",
                description=f"the answer lacks {', '.join(missing)}",
                outcome_unknown=outcome_unknown,
                known=known,
                extra={"client_id": body.get("client_id")} if isinstance(body.get("client_id"), str) else None,
            )
        return body

    # -- discovery and tokens --------------------------------------------------------------------------------

    async def discovery(self, operation: str = "discovery") -> ProviderMetadata:
        """The issuer's metadata (cached).

        Raises:
            ProviderError: discovery failed (code from `DiscoveryError`).
        """
        try:
            return await self.discovery_cache.get(self.issuer, self.client)
        except DiscoveryError as exc:
            raise self.error(
                operation, status=exc.status, code=exc.code, description=exc.detail, retryable=exc.retryable
            ) from exc

    async def client_credentials(
        self,
        operation: str,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        scope: str | None = None,
        extra: Mapping[str, str] | None = None,
        json_request: bool = False,
        cache: bool = False,
        force_refresh: bool = False,
    ) -> AccessToken:
        """A client-credentials token (RFC 6749 §4.4): Basic auth with a form body, or with `json_request` the
        credentials in a JSON body (Auth0 Management). With `cache`, kept per key until `expires_in − 60 s`.

        Raises:
            ProviderError: the token endpoint refused or did not answer.
        """
        params: dict[str, str] = {"grant_type": "client_credentials"}
        if scope:
            params["scope"] = scope
        params.update(extra or {})

        async def fetch() -> AccessToken:
            if json_request:
                body = {**params, "client_id": client_id, "client_secret": client_secret.get_secret_value()}
                response = await self.request(
                    operation, "POST", token_url, idempotent=True, json_body=body, known=[client_secret]
                )
            else:
                response = await self.request(
                    operation,
                    "POST",
                    token_url,
                    idempotent=True,
                    form=params,
                    auth=(client_id, client_secret.get_secret_value()),
                    known=[client_secret],
                )
            return self._access_token(operation, response, client_secret)

        if not cache:
            return await fetch()
        digest = hashlib.sha256(
            json.dumps(
                [self.provider_type, self.provider_id, token_url, client_id, client_secret.get_secret_value(), params],
                sort_keys=True,
            ).encode()
        ).hexdigest()
        return await self.tokens.get(digest, fetch, force_refresh=force_refresh)

    def _access_token(self, operation: str, response: httpx.Response, client_secret: SecretStr) -> AccessToken:
        body = self.json_object(response, operation, required=("access_token",), known=[client_secret])
        value = body.pop("access_token")
        if not isinstance(value, str):
            raise self.error(operation, status=response.status_code, code="invalid_response", description="bad token")
        expires_in = body.get("expires_in")
        return AccessToken(
            value=SecretStr(value),
            token_type=str(body.get("token_type", "Bearer")),
            expires_in=float(expires_in) if isinstance(expires_in, int | float) else None,
            scope=body.get("scope") if isinstance(body.get("scope"), str) else None,
            extra={k: v for k, v in body.items() if k not in ("refresh_token", "id_token")},
        )

    # -- probe -----------------------------------------------------------------------------------------------

    async def probe_token_url(self) -> str:
        """Where `probe` asks for a token: the discovery `token_endpoint`."""
        metadata = await self.discovery("probe")
        token_url = metadata.token_endpoint
        if token_url is None:
            raise self.error("probe", code="invalid_response", description="discovery has no token_endpoint")
        return token_url

    def probe_params(self, strategy: StrategyInfo | None) -> dict[str, str]:
        """The form fields of a probe: the strategy's scopes (minus OpenID ones) and `token_post_args`."""
        params: dict[str, str] = {"grant_type": "client_credentials"}
        if strategy is not None:
            scopes = registration_scopes(strategy.scopes)
            if scopes:
                params["scope"] = " ".join(scopes)
            params.update(strategy.token_post_args())
        return params

    @operation_deadline
    async def probe(
        self, client_id: str, client_secret: SecretStr, strategy: StrategyInfo | None = None
    ) -> ProbeResult:
        """Try the credentials with a client-credentials token request.

        Returns:
            `OK` on a token; `REJECTED` when the IdP does not accept the credentials (401, `invalid_client`,
            `unauthorized_client`); `DENIED` when it refuses the request itself (`invalid_scope`, `access_denied`,
            `invalid_target`, other 400/403).

        Raises:
            ProviderError: no usable answer (timeouts, 5xx, 429, a 200 without `access_token`).
        """
        token_url = await self.probe_token_url()
        response = await self.request(
            "probe",
            "POST",
            token_url,
            idempotent=True,
            form=self.probe_params(strategy),
            auth=(client_id, client_secret.get_secret_value()),
            accept={400, 401, 403},
            known=[client_secret],
        )
        if response.status_code == 200:
            self._access_token("probe", response, client_secret)
            return ProbeResult.OK
        code = parse_error_body(response.status_code, response.content).code
        if response.status_code == 401 or code in ("invalid_client", "unauthorized_client"):
            return ProbeResult.REJECTED
        return ProbeResult.DENIED

    # -- defaults for operations a type does not support ------------------------------------------------------

    async def register(self, app: AppMetadata) -> IssuedClient:
        self.unsupported("register", "this IdP cannot register clients")

    async def deregister(self, ref: ClientRef) -> None:
        self.unsupported("deregister", "this IdP cannot delete clients")

    async def rotate_secret(self, ref: ClientRef, mode: RotateMode = "replace") -> RotatedSecret:
        self.unsupported("rotate_secret", "this IdP cannot rotate client secrets")

    async def revoke_secret(self, ref: ClientRef, credential_id: str) -> None:
        self.unsupported("revoke_secret", "this IdP cannot hold two secrets per client")

    async def on_event(self, ref: ClientRef, event: HookEvent) -> ClientUpdate | None:
        """Default: events are not pushed to this IdP."""
        return None

    async def verify(self, trial: bool = False, app: AppMetadata | None = None) -> VerifyReport:
        self.unsupported("verify", "this IdP cannot be verified")

    def list_clients(self) -> AsyncIterator[IdpClient]:
        self.unsupported("list_clients", "this IdP cannot list clients")

    # -- verify helpers --------------------------------------------------------------------------------------

    def trial_app(self) -> AppMetadata:
        """A throwaway application for `verify(trial=True)` when the caller gives none."""
        return AppMetadata(
            application_id=uuid.uuid4(),
            name="keystile verify",
            description="throwaway client made by keystile's provider verification; safe to delete",
            dcr_provider_id=self.provider_id,
            created_at=datetime.now(UTC),
        )

    async def verify_discovery(self, report: VerifyReport) -> ProviderMetadata | None:
        """The `discovery` check: metadata fetched and its issuer equal to the configured one."""
        try:
            metadata = await self.discovery("verify")
        except ProviderError as exc:
            report.failed("discovery", f"{self.display_name} discovery failed: {exc.description or exc.code}")
            return None
        report.passed("discovery", "issuer metadata fetched; issuer matches")
        return metadata

    async def trial_steps(self, app: AppMetadata, issued: IssuedClient, ref: ClientRef) -> tuple[ClientRef, list[str]]:
        """What a trial registration checks between register and deregister; returns the (possibly updated) ref
        and the problems found. Default: the new credentials get a token (unless the type needs a delayed probe)."""
        problems: list[str] = []
        if not issued.needs_probe:
            problems += await self.trial_probe(issued.client_id, issued.client_secret, app)
        return ref, problems

    async def trial_probe(self, client_id: str, client_secret: SecretStr, app: AppMetadata) -> list[str]:
        """Problems with a probe of fresh credentials (empty when they got a token)."""
        try:
            outcome = await self.probe(client_id, client_secret, app.strategy)
        except ProviderError as exc:
            return [f"the new client's token request failed: {exc}"]
        if outcome is not ProbeResult.OK:
            return [f"the new client's credentials were {outcome.value} at the token endpoint"]
        return []

    async def verify_trial(self, report: VerifyReport, app: AppMetadata | None) -> None:
        """The `trial_registration` check: register, probe the new credentials, deregister.

        A failed clean-up delete is reported (failed check and error) and left in `report.cleanup` for the caller
        to queue.
        """
        app = app or self.trial_app()
        try:
            issued = await self.register(app)
        except ProviderError as exc:
            report.failed("trial_registration", f"trial registration failed: {exc}")
            return
        ref = issued.as_ref(app.application_id, app.created_at)
        ref, problems = await self.trial_steps(app, issued, ref)
        try:
            await self.deregister(ref)
        except ProviderError as exc:
            report.cleanup, report.cleanup_landed = ref, exc.may_have_landed
            problems.append(f"the trial client {issued.client_id} could not be deleted: {exc}")
        if problems:
            report.failed("trial_registration", "; ".join(problems))
        else:
            report.passed("trial_registration", f"client {issued.client_id} registered, checked and deleted")


def _fits(deadline_at: float, delay: float) -> bool:
    return time.monotonic() + delay < deadline_at


def _header_request_id(headers: httpx.Headers) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return str(value)
    return None
