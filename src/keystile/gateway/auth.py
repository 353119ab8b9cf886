"""Authentication and application lookup (contracts/gateway.md §5.1–§5.5).

`Authenticator.authenticate` takes the **first** credential present among the route's strategies (API key,
`Authorization: Basic`, `Authorization: Bearer`, session cookie), finds the application from it alone, then
verifies it with the application's strategy. It raises `AuthRejectedError` (401, or 503 when the IdP is needed
and unreachable); the registration check (403) is the caller's.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from keystile.gateway.exchange import ExchangeCache, SecretRejectedError
from keystile.gateway.idp import IdpClient, IdpUnavailableError
from keystile.gateway.metrics import GatewayMetrics
from keystile.gateway.responses import IDP_UNAVAILABLE
from keystile.gateway.session import MAX_COOKIE_BYTES, SessionData, decode_session, encode_session
from keystile.gateway.shared import SharedTokens
from keystile.gateway.tables import AppEntry, CompiledRoute, CompiledStrategy, GatewayConfig
from keystile.oidc.tokens import LEEWAY_SECONDS, TokenInvalidError, UnverifiedToken, parse_unverified, verify_jwt

__all__ = ["AuthRejectedError", "AuthResult", "Authenticator", "parse_basic"]

log = logging.getLogger("keystile.gateway.auth")

Headers = list[tuple[bytes, bytes, bytes]]
JWT_CACHE_SIZE = 100_000
INTROSPECTION_MAX_TTL = 300.0


class AuthRejectedError(Exception):
    """A refused request: status (401/503), metrics reason, response headers."""

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        method: str = "",
        headers: list[tuple[str, str]] | None = None,
        message: str | None = None,
        app_id: str = "",
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.method = method
        self.headers = headers or []
        self.message = message
        self.app_id = app_id


@dataclass(slots=True)
class AuthResult:
    app: AppEntry
    method: str
    identifier: str
    upstream_authorization: bytes | None = None
    drop_headers: frozenset[bytes] = frozenset()
    cookie_name: str | None = None
    set_cookie: bytes | None = None


def parse_basic(value: str) -> tuple[str, str] | None:
    """`client_id`, `client_secret` from the text after `Basic ` (§5.3), or None.

    Base64 (padding optional) decoding to UTF-8 with a `:` is split at the first `:`; otherwise a value
    containing `:` is taken literally (Konnect's un-encoded `CLIENT_ID:CLIENT_SECRET`). Empty parts → None.
    RFC 6749 §2.3.1 form-encoding of the parts is undone.
    """
    value = value.strip()
    decoded: str | None = None
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        text = raw.decode("utf-8")
        if ":" in text:
            decoded = text
    except (binascii.Error, ValueError, UnicodeDecodeError):
        decoded = None
    if decoded is None:
        if ":" not in value:
            return None
        decoded = value
    client_id, _, secret = decoded.partition(":")
    client_id = unquote_plus(client_id)
    secret = unquote_plus(secret)
    if not client_id or not secret:
        return None
    return client_id, secret


def _query_values(query: bytes, name: str) -> list[str]:
    out = []
    for part in query.split(b"&"):
        if not part:
            continue
        k, _, v = part.partition(b"=")
        if unquote_plus(k.decode("latin-1")) == name:
            out.append(unquote_plus(v.decode("latin-1")))
    return out


class Authenticator:
    def __init__(
        self,
        idp: IdpClient,
        metrics: GatewayMetrics,
        *,
        insecure_cookies: bool = False,
        clock: Callable[[], float] = time.time,
        shared: SharedTokens | None = None,
    ) -> None:
        self.idp = idp
        self.metrics = metrics
        self.exchanges = ExchangeCache(idp, metrics, clock=clock, shared=shared)
        self._clock = clock
        self._secure = not insecure_cookies
        # sha256(token) -> (claims, the strategy settings object it was verified under, exp)
        self._jwt: collections.OrderedDict[bytes, tuple[dict[str, Any], Any, float]] = collections.OrderedDict()
        self._introspected: dict[tuple[str, bytes], tuple[float, dict[str, Any]]] = {}

    # -- entry point ----------------------------------------------------------------------------------
    async def authenticate(
        self, config: GatewayConfig, route: CompiledRoute, headers: Headers, query: bytes
    ) -> AuthResult:
        """Authenticate one request on `route` (§5.1 steps 1–4, 6).

        Raises:
            AuthRejectedError: 401 (no, unknown or bad credential) or 503 (IdP unavailable).
        """
        # (a) API keys, per key_auth strategy, per key name: header, then query parameter
        for strategy in route.key_strategies:
            for name, lname in zip(strategy.key_names, strategy.key_names_lower, strict=True):
                found = [v for (h, _, v) in headers if h == lname]
                params = _query_values(query, name) if query else []
                if found or params:
                    return self._key_auth(config, route, lname, found, params)
        authorization: bytes | None = None
        count = 0
        for h, _, v in headers:
            if h == b"authorization":
                authorization = v
                count += 1
        if authorization is not None:
            scheme = authorization[:7].lower()
            if route.has_basic and scheme.startswith(b"basic "):
                if count > 1:
                    raise self._reject(route, "bad_credential", "client_credentials")
                return await self._basic(config, route, authorization[6:].decode("latin-1"))
            if (route.bearer_strategies or route.introspection_strategies) and scheme == b"bearer ":
                if count > 1:
                    raise self._reject(route, "bad_token", "bearer", bearer_error="invalid_request")
                return await self._bearer(config, route, authorization[7:].decode("latin-1").strip())
        if route.session_strategies:
            cookies = [v for (h, _, v) in headers if h == b"cookie"]
            if cookies:
                for strategy in route.session_strategies:
                    value = _cookie(cookies, strategy.cookie_name)
                    if value is not None:
                        return self._session(config, route, strategy, value)
        raise self._reject(route, "no_credential", "")

    # -- failures ---------------------------------------------------------------------------------------
    def _reject(
        self,
        route: CompiledRoute,
        reason: str,
        method: str,
        *,
        bearer_error: str | None = None,
        description: str | None = None,
        clear_cookie: str | None = None,
        app_id: str = "",
    ) -> AuthRejectedError:
        headers = []
        for challenge in route.www_authenticate:
            if bearer_error is not None and challenge.startswith("Bearer"):
                challenge = f'Bearer realm="keystile", error="{bearer_error}"'
                if description:
                    challenge += f', error_description="{description}"'
            headers.append(("WWW-Authenticate", challenge))
        if clear_cookie is not None:
            headers.append(("Set-Cookie", f"{clear_cookie}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"))
        return AuthRejectedError(401, reason, method=method, headers=headers, app_id=app_id)

    @staticmethod
    def _unavailable(method: str, exc: IdpUnavailableError, app_id: str) -> AuthRejectedError:
        return AuthRejectedError(
            503,
            "idp_unavailable",
            method=method,
            headers=[("Retry-After", str(exc.retry_after))],
            message=IDP_UNAVAILABLE,
            app_id=app_id,
        )

    def _cookie_drop(self, route: CompiledRoute) -> str | None:
        return route.session_strategies[0].cookie_name if route.session_strategies else None

    # -- (a) API key --------------------------------------------------------------------------------------
    def _key_auth(
        self, config: GatewayConfig, route: CompiledRoute, lname: bytes, found: list[bytes], params: list[str]
    ) -> AuthResult:
        if len(found) + len(params) > 1:
            raise self._reject(route, "repeated_key", "key_auth")
        raw = found[0] if found else params[0].encode("utf-8", "surrogateescape")  # a header is hashed as sent
        digest = hashlib.sha256(raw).hexdigest()
        for strategy in route.key_strategies:
            if lname not in strategy.key_names_lower:
                continue
            entry = config.keys.get((strategy.id, digest))
            if entry is None:
                continue
            if entry.expires_at is not None and entry.expires_at <= self._clock():
                raise self._reject(route, "expired", "key_auth", app_id=entry.app.id)
            return AuthResult(
                app=entry.app,
                method="key_auth",
                identifier=entry.credential_id,
                drop_headers=frozenset(n for s in route.key_strategies for n in s.key_names_lower),
                cookie_name=self._cookie_drop(route),
            )
        raise self._reject(route, "unknown_app", "key_auth")

    # -- (b) client credentials -----------------------------------------------------------------------
    async def _basic(self, config: GatewayConfig, route: CompiledRoute, value: str) -> AuthResult:
        parsed = parse_basic(value)
        if parsed is None:
            raise self._reject(route, "bad_credential", "client_credentials")
        client_id, secret = parsed
        app: AppEntry | None = None
        strategy: CompiledStrategy | None = None
        for candidate in route.strategies:
            if candidate.client_credentials:
                app = config.client_ids.get((candidate.id, client_id))
                if app is not None:
                    strategy = candidate
                    break
        if app is None or strategy is None:
            raise self._reject(route, "unknown_app", "client_credentials")
        try:
            access_token, expires_at = await self.exchanges.token(
                strategy, app, client_id, secret, shared_key=config.shared_key
            )
        except SecretRejectedError:
            raise self._reject(route, "bad_secret", "client_credentials", app_id=app.id) from None
        except IdpUnavailableError as exc:
            raise self._unavailable("client_credentials", exc, app.id) from None
        return AuthResult(
            app=app,
            method="client_credentials",
            identifier=client_id,
            upstream_authorization=b"Bearer " + access_token.encode("latin-1", "replace"),
            drop_headers=frozenset({b"authorization"}),
            cookie_name=self._cookie_drop(route),
            set_cookie=self._new_session(strategy, app, client_id, access_token, expires_at),
        )

    # -- (c) bearer -----------------------------------------------------------------------------------
    async def _bearer(self, config: GatewayConfig, route: CompiledRoute, token: str) -> AuthResult:
        if not token:
            raise self._reject(route, "no_credential", "bearer", bearer_error="invalid_token")
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._jwt.get(digest)
        jwt: UnverifiedToken | None = None
        if cached is not None:
            claims = cached[0]
        else:
            jwt = parse_unverified(token)
            if jwt is None:
                if route.introspection_strategies:
                    return await self._introspect(config, route, token)
                raise self._reject(route, "bad_token", "bearer", bearer_error="invalid_token", description="malformed")
            claims = jwt.claims
        iss = claims.get("iss")
        app: AppEntry | None = None
        strategy: CompiledStrategy | None = None
        identifier = ""
        issuer_known = False
        for candidate in route.bearer_strategies:
            if candidate.issuer != iss:
                continue
            issuer_known = True
            for claim in candidate.credential_claim:
                value = claims.get(claim)
                if isinstance(value, str):
                    app = config.client_ids.get((candidate.id, value))
                    if app is not None:
                        strategy, identifier = candidate, value
                        break
            if app is not None:
                break
        if app is None or strategy is None:
            reason = "unknown_app" if issuer_known else "bad_token"
            raise self._reject(route, reason, "bearer", bearer_error="invalid_token", description="unknown token")
        now = self._clock()
        if cached is not None and cached[1] is strategy.oidc and now < cached[2] + LEEWAY_SECONDS:
            self.metrics.cache_event("jwt", "hit")
            exp = cached[2]
        else:
            if jwt is None:
                jwt = parse_unverified(token)
                assert jwt is not None  # it parsed when it was cached
            exp = await self._verify(route, strategy, jwt, app, digest)
        return AuthResult(
            app=app,
            method="bearer",
            identifier=identifier,
            cookie_name=self._cookie_drop(route),
            set_cookie=self._new_session(strategy, app, identifier, token, exp) if strategy.session else None,
        )

    async def _verify(
        self, route: CompiledRoute, strategy: CompiledStrategy, jwt: UnverifiedToken, app: AppEntry, digest: bytes
    ) -> float:
        self._jwt.pop(digest, None)
        self.metrics.cache_event("jwt", "miss")
        kid = jwt.header.get("kid")
        oidc = strategy.oidc
        assert oidc is not None
        try:
            keys = await self.idp.keys(strategy, kid if isinstance(kid, str) else None)
            claims = verify_jwt(
                jwt,
                keys,
                issuer=strategy.issuer,
                now=self._clock(),
                audience=oidc.settings.audience,
                scopes_required=oidc.settings.scopes_required,
            )
        except TokenInvalidError as exc:
            raise self._reject(
                route, exc.reason, "bearer", bearer_error="invalid_token", description=exc.detail, app_id=app.id
            ) from None
        except IdpUnavailableError as exc:
            raise self._unavailable("bearer", exc, app.id) from None
        exp = float(claims["exp"])
        self._jwt[digest] = (claims, oidc, exp)
        if len(self._jwt) > JWT_CACHE_SIZE:
            self._jwt.popitem(last=False)
            self.metrics.cache_event("jwt", "evict")
        return exp

    async def _introspect(self, config: GatewayConfig, route: CompiledRoute, token: str) -> AuthResult:
        digest = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        for strategy in route.introspection_strategies:
            oidc = strategy.oidc
            assert oidc is not None
            cached = self._introspected.get((strategy.id, digest))
            if cached is not None and cached[0] > now:
                self.metrics.cache_event("introspection", "hit")
                document = cached[1]
            else:
                settings = oidc.settings
                if not settings.introspection_client_id or not settings.introspection_client_secret:
                    continue
                try:
                    meta = await self.idp.metadata(strategy)
                    endpoint = meta.endpoint("introspection_endpoint")
                    if endpoint is None:
                        raise IdpUnavailableError(f"{strategy.issuer} publishes no introspection_endpoint")
                    answer = await self.idp.post_form(
                        strategy,
                        "introspection",
                        endpoint,
                        {"token": token, "token_type_hint": "access_token"},
                        (settings.introspection_client_id, settings.introspection_client_secret),
                    )
                except IdpUnavailableError as exc:
                    raise self._unavailable("introspection", exc, "") from None
                document = answer.document or {}
                if document.get("active") is True:
                    exp = document.get("exp")
                    until = now + INTROSPECTION_MAX_TTL
                    if isinstance(exp, int | float) and not isinstance(exp, bool):
                        until = min(until, float(exp))
                    self._introspected[(strategy.id, digest)] = (until, document)
            if document.get("active") is not True:
                continue
            for claim in ("client_id", *strategy.credential_claim):
                value = document.get(claim)
                if isinstance(value, str):
                    app = config.client_ids.get((strategy.id, value))
                    if app is not None:
                        return AuthResult(
                            app=app, method="introspection", identifier=value, cookie_name=self._cookie_drop(route)
                        )
            raise self._reject(route, "unknown_app", "introspection", bearer_error="invalid_token")
        raise self._reject(route, "bad_token", "introspection", bearer_error="invalid_token", description="inactive")

    # -- (d) session -------------------------------------------------------------------------------------
    def _session(
        self, config: GatewayConfig, route: CompiledRoute, strategy: CompiledStrategy, value: str
    ) -> AuthResult:
        assert strategy.session_key is not None
        data = decode_session(strategy.session_key, strategy.id, value)
        now = self._clock()
        app = config.apps.get(data.app) if data is not None else None
        current = config.strategies.get(strategy.id)
        if (
            data is None
            or app is None
            or data.exp <= now
            or app.strategy_id != strategy.id
            or (app.not_before is not None and data.iat < app.not_before)
            or current is None
            or not current.session
        ):
            raise self._reject(
                route,
                "bad_session",
                "session",
                bearer_error="invalid_token",
                description="invalid session",
                clear_cookie=strategy.cookie_name,
                app_id=app.id if app is not None else "",
            )
        return AuthResult(
            app=app,
            method="session",
            identifier=data.cid,
            upstream_authorization=b"Bearer " + data.at.encode("latin-1", "replace"),
            drop_headers=frozenset({b"authorization"}),
            cookie_name=strategy.cookie_name,
        )

    def _new_session(
        self, strategy: CompiledStrategy, app: AppEntry, cid: str, access_token: str, token_exp: float
    ) -> bytes | None:
        if not strategy.session or strategy.session_key is None or strategy.oidc is None:
            return None
        now = int(self._clock())
        exp = int(min(token_exp, now + strategy.oidc.settings.session_absolute_timeout))
        if exp <= now:
            return None
        value = encode_session(
            strategy.session_key,
            SessionData(app=app.id, strategy=strategy.id, cid=cid, iat=now, exp=exp, at=access_token),
        )
        attrs = f"; HttpOnly{'; Secure' if self._secure else ''}; SameSite=Lax; Path=/; Max-Age={exp - now}"
        cookie = f"{strategy.cookie_name}={value}{attrs}"
        if len(cookie) > MAX_COOKIE_BYTES:
            log.warning("session cookie for application %s would be %d bytes; not set", app.id, len(cookie))
            return None
        return b"Set-Cookie: " + cookie.encode("latin-1") + b"\r\n"


def _cookie(values: list[bytes], name: str) -> str | None:
    target = name.encode()
    for header in values:
        for part in header.split(b";"):
            k, sep, v = part.strip().partition(b"=")
            if sep and k.strip() == target:
                return v.strip().decode("latin-1")
    return None
