"""The domain error tree. Every layer raises these; `api/problems.py` turns them into problem+json in one
table and `web/` into form messages. Foreign exceptions are translated at the boundary and chained
(`raise ProviderError(...) from exc`).

    KeystileError
    ├── ConfigurationError        settings refused at start-up (never reaches HTTP)
    ├── ValidationError           400, carries every InvalidParameter found in one pass
    ├── AuthenticationError       401
    ├── PermissionDeniedError     403
    ├── NotFoundError             404
    ├── ConflictError             409 (optional Location)
    ├── GoneError                 410
    ├── PayloadTooLargeError      413
    ├── UnsupportedMediaTypeError 415
    ├── IdempotencyMismatchError  422
    ├── ThrottledError            429 (Retry-After)
    ├── VaultError                a ciphertext that does not decrypt under any known key (500)
    ├── ProviderError             the IdP failed: 502 when it answered, 504 when it did not in time
    ├── DiscoveryError            (oidc/discovery.py) issuer metadata unreachable or inconsistent
    └── JwksUnavailableError      (oidc/jwks.py) no usable signing keys
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "GoneError",
    "IdempotencyMismatchError",
    "InvalidParameter",
    "KeystileError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ProviderError",
    "ThrottledError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "VaultError",
]


class KeystileError(Exception):
    """Base of every error keystile raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ConfigurationError(KeystileError):
    """Settings that keystile refuses to run with; the message says what to change."""


@dataclass(frozen=True)
class InvalidParameter:
    """One problem in a request, as the `invalid_parameters` item of a 400 (management-api.md §1.2)."""

    field: str
    rule: str
    reason: str
    source: str | None = "body"
    choices: list[Any] | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    dependents: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "rule": self.rule, "reason": self.reason}
        if self.source is not None:
            out["source"] = self.source
        for key in ("choices", "minimum", "maximum", "dependents"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class ValidationError(KeystileError):
    """A request with one or more invalid parameters; nothing was changed."""

    def __init__(self, items: list[InvalidParameter], detail: str = "Invalid request") -> None:
        if not items:
            raise ValueError("a ValidationError needs at least one InvalidParameter")
        super().__init__(detail)
        self.items = list(items)

    @classmethod
    def single(cls, field: str, rule: str, reason: str, source: str | None = "body", **extra: Any) -> ValidationError:
        return cls([InvalidParameter(field=field, rule=rule, reason=reason, source=source, **extra)])


class AuthenticationError(KeystileError):
    """No valid credential (401)."""

    def __init__(self, detail: str = "Unauthorized", title: str = "Unauthorized") -> None:
        super().__init__(detail)
        self.title = title


class PermissionDeniedError(KeystileError):
    """Authenticated, but not allowed (403)."""


class NotFoundError(KeystileError):
    """Unknown id or path (404). The detail is always "Not Found" on the wire."""

    def __init__(self, detail: str = "Not Found") -> None:
        super().__init__(detail)


class ConflictError(KeystileError):
    """Unique name taken, referenced resource, state conflict (409)."""

    def __init__(self, detail: str, location: str | None = None) -> None:
        super().__init__(detail)
        self.location = location


class GoneError(KeystileError):
    """A used or expired one-time token (410)."""


class PayloadTooLargeError(KeystileError):
    """Request body over the limit (413)."""


class UnsupportedMediaTypeError(KeystileError):
    """Request body that is not JSON (415)."""


class IdempotencyMismatchError(KeystileError):
    """An Idempotency-Key reused with another body (422)."""


class ThrottledError(KeystileError):
    """Too many attempts (429)."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class VaultError(KeystileError):
    """A stored secret that cannot be decrypted (wrong key, tampered or moved ciphertext)."""


_PROVIDER_NAMES = {
    "okta": "Okta",
    "auth0": "Auth0",
    "curity": "Curity",
    "azureAd": "Entra ID",
    "http": "the HTTP DCR bridge",
    "rfc7591": "the RFC 7591 server",
}


@dataclass
class ProviderError(KeystileError):
    """An IdP call failed (dcr-providers.md §1.3).

    `str(error)` is one sentence naming the IdP, the operation, its status, code and redacted message; the
    APIs put it in the `detail` of a 502 (answered) or 504 (no answer in time).
    """

    provider_type: str
    operation: str
    status: int | None = None
    code: str | None = None
    description: str = ""
    retryable: bool = False
    retry_after: float | None = None
    outcome_unknown: bool = False
    idp_request_id: str | None = None
    provider_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.description = self.description[:500]
        KeystileError.__init__(self, self.sentence())

    @property
    def may_have_landed(self) -> bool:
        """Whether the IdP may have carried the request out: it answered with a server error (it may have acted
        before failing), or the request may have reached it without an answer. A 4xx answer is a refusal: nothing
        was done (a stale registration access token's 401 must never make the next DELETE's 401 mean "gone").
        A later DELETE answered 401/404 then means "already gone"."""
        answered_5xx = self.status is not None and self.status >= 500
        return self.outcome_unknown or answered_5xx or bool(self.extra.get("may_have_landed"))

    @property
    def provider_name(self) -> str:
        return _PROVIDER_NAMES.get(self.provider_type, self.provider_type)

    @property
    def timed_out(self) -> bool:
        return self.code == "timeout"

    def sentence(self) -> str:
        head = f"{self.provider_name} {self.operation} failed"
        parts: list[str] = []
        if self.status is not None:
            parts.append(str(self.status))
        if self.code:
            parts.append(self.code)
        tail = " ".join(parts)
        if self.description:
            tail = f"{tail}: {self.description}" if tail else self.description
        return f"{head}: {tail}" if tail else head

    def __str__(self) -> str:
        return self.sentence()

    def __hash__(self) -> int:
        return id(self)
