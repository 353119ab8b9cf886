"""JWT (compact JWS) verification for access tokens (contracts/gateway.md §5.4).

Protocol code only: no HTTP, no framework. Keys come from `oidc.jwks`; the caller decides what a claim
value means. Algorithms outside the allow-list (RFC 8725 §3.1: `none` and the HMAC family among them) are
refused before any key is looked at.
"""

from __future__ import annotations

import base64
import binascii
import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

from keystile.domain.errors import AuthenticationError

__all__ = [
    "ALLOWED_ALGORITHMS",
    "LEEWAY_SECONDS",
    "JsonWebKey",
    "TokenInvalidError",
    "UnverifiedToken",
    "parse_unverified",
    "select_keys",
    "verify_jwt",
]

#: §5.4 allow-list. Anything else, `none` and HS* included, is refused.
ALLOWED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"})
LEEWAY_SECONDS = 60

_KEY_TYPE_FOR_ALG: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "EdDSA": ("OKP", "Ed25519"),
}


class TokenInvalidError(AuthenticationError):
    """A token that does not verify; `reason` is the metrics/log reason (`bad_token`, `expired`)."""

    def __init__(self, description: str, reason: str = "bad_token") -> None:
        super().__init__(description)
        self.reason = reason


@dataclass(frozen=True)
class JsonWebKey:
    """One usable verification key from a JWKS."""

    kid: str | None
    kty: str
    crv: str | None
    use: str | None
    alg: str | None
    key: RSAKey | ECKey | OKPKey

    @classmethod
    def from_jwk(cls, data: dict[str, Any]) -> JsonWebKey | None:
        """Import one JWK; keys of other types (oct, private parts ignored) or broken keys give None."""
        kty = data.get("kty")
        public = {k: v for k, v in data.items() if k not in {"d", "p", "q", "dp", "dq", "qi"}}
        try:
            key: RSAKey | ECKey | OKPKey
            if kty == "RSA":
                key = RSAKey.import_key(public)
            elif kty == "EC":
                key = ECKey.import_key(public)
            elif kty == "OKP":
                key = OKPKey.import_key(public)
            else:
                return None
        except (JoseError, ValueError, TypeError, KeyError):
            return None
        kid = data.get("kid")
        return cls(
            kid=kid if isinstance(kid, str) else None,
            kty=str(kty),
            crv=data.get("crv") if isinstance(data.get("crv"), str) else None,
            use=data.get("use") if isinstance(data.get("use"), str) else None,
            alg=data.get("alg") if isinstance(data.get("alg"), str) else None,
            key=key,
        )


@dataclass(frozen=True)
class UnverifiedToken:
    """A compact JWS split and decoded, nothing verified yet."""

    raw: str
    header: dict[str, Any]
    claims: dict[str, Any]


def _b64url_json(part: str) -> Any:
    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def parse_unverified(token: str) -> UnverifiedToken | None:
    """Split a compact JWS (three base64url parts, JSON header and payload); None when it is not one."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        return None
    try:
        header = _b64url_json(parts[0])
        claims = _b64url_json(parts[1])
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):  # nesting bombs are not tokens
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return UnverifiedToken(raw=token, header=header, claims=claims)


def select_keys(keys: Iterable[JsonWebKey], alg: str, kid: str | None) -> list[JsonWebKey]:
    """Keys that may verify `alg` (§5.4): by `kid` when given, `use` absent/`sig`, `alg` absent/equal, type fits."""
    kty, crv = _KEY_TYPE_FOR_ALG[alg]
    out = []
    for key in keys:
        if kid is not None and key.kid != kid:
            continue
        if key.use not in (None, "sig") or key.alg not in (None, alg) or key.kty != kty:
            continue
        if crv is not None and key.crv != crv:
            continue
        out.append(key)
    return out


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenInvalidError(f"the {name} claim is not a number")
    return float(value)


def verify_jwt(
    token: UnverifiedToken,
    keys: Sequence[JsonWebKey],
    *,
    issuer: str,
    now: float,
    audience: Sequence[str] = (),
    scopes_required: Sequence[str] = (),
) -> dict[str, Any]:
    """Verify signature and claims of a JWT access token (§5.4) and return its claims.

    Args:
        token: from `parse_unverified`.
        keys: the issuer's JWKS keys (all of them; selection happens here).
        issuer: the exact expected `iss`.
        now: current time, seconds since the epoch.
        audience: when non-empty, `aud` must contain one of them.
        scopes_required: all must be in `scope` (space-separated) or `scp` (array).

    Raises:
        TokenInvalidError: refused algorithm, no fitting key, bad signature or a failing claim.
    """
    alg = token.header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise TokenInvalidError("the token algorithm is not allowed")
    kid = token.header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise TokenInvalidError("the token kid is not a string")
    candidates = select_keys(keys, alg, kid)
    if not candidates:
        raise TokenInvalidError("no key matches the token")
    verified = False
    for candidate in candidates:
        try:
            with warnings.catch_warnings():
                # joserfc flags the `EdDSA` name as deprecated (RFC 9864); §5.4 allows it on purpose.
                warnings.simplefilter("ignore", SecurityWarning)
                jws.deserialize_compact(token.raw, candidate.key, algorithms=[alg])
        except (JoseError, ValueError):
            continue
        verified = True
        break
    if not verified:
        raise TokenInvalidError("the token signature is invalid")
    claims = token.claims
    if claims.get("iss") != issuer:
        raise TokenInvalidError("the token issuer is not accepted")
    exp = _number(claims, "exp")
    if exp is None:
        raise TokenInvalidError("the token has no exp claim")
    if now >= exp + LEEWAY_SECONDS:
        raise TokenInvalidError("the token expired", reason="expired")
    nbf = _number(claims, "nbf")
    if nbf is not None and nbf > now + LEEWAY_SECONDS:
        raise TokenInvalidError("the token is not valid yet")
    if audience:
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else (aud if isinstance(aud, list) else [])
        if not any(a in auds for a in audience):
            raise TokenInvalidError("the token audience is not accepted")
    if scopes_required:
        granted: set[str] = set()
        scope = claims.get("scope")
        if isinstance(scope, str):
            granted.update(scope.split())
        scp = claims.get("scp")
        if isinstance(scp, list):
            granted.update(s for s in scp if isinstance(s, str))
        if not all(s in granted for s in scopes_required):
            raise TokenInvalidError("the token lacks a required scope")
    return claims
