"""Configuration of the built-in identity provider (a development IdP, not a production one)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from keystile.domain.errors import ConfigurationError

__all__ = [
    "DCR_SCOPE",
    "DEFAULT_ADMIN_CLIENT_ID",
    "DEFAULT_API_AUDIENCE",
    "DEFAULT_SCOPES",
    "IdpConfig",
    "issuer_for",
]

#: The scope an admin client asks for to mint a single-use initial access token (contracts/dcr-providers.md §2.6).
DCR_SCOPE = "dcr"
DEFAULT_SCOPES: tuple[str, ...] = ("read", "write")
DEFAULT_API_AUDIENCE = "urn:keystile:api"
DEFAULT_ADMIN_CLIENT_ID = "keystile-idp-admin"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def issuer_for(host: str, port: int) -> str:
    """The issuer of a server bound to `host:port`: a wildcard address is named by the IPv4 loopback."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - a comparison, not a bind
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


@dataclass(frozen=True)
class IdpConfig:
    """Everything `create_idp_app` needs.

    Attributes:
        data_dir: folder for the SQLite store, the signing keys (`keys.json`, mode 0600) and the facts file
            `idp.json` (mode 0600); created with mode 0700 when missing.
        issuer: the issuer identifier; every endpoint URL is built from it, so it is the URL clients reach
            the app at (with the mount path when mounted inside another app).
        api_audience: the default `aud` of access tokens (RFC 9068 §3).
        audiences: further audiences a client may ask for with `resource` (RFC 8707) or `audience`.
        scopes: the API scopes clients may register and request (`dcr` is reserved for the admin client).
        access_token_ttl: lifetime of access tokens in seconds; a retired signing key stays published this
            long (plus a minute of clock leeway) after a rotation.
        initial_access_tokens: static initial access tokens (RFC 7591 §3) accepted for registration; clients
            registered with them get a new secret on every RFC 7592 PUT. When empty, one is generated at the
            first start and kept in `idp.json`.
        plain_initial_access_tokens: static initial access tokens whose clients keep their secret on PUT (for
            an `rfc7591` provider with `rotates_secret_on_put: false`); generated likewise when empty.
        admin_client_id: the admin client that mints single-use initial access tokens with scope `dcr`.
        admin_client_secret: its secret; when `None`, one is generated at the first start and kept.
    """

    data_dir: Path
    issuer: str
    api_audience: str = DEFAULT_API_AUDIENCE
    audiences: tuple[str, ...] = ()
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    access_token_ttl: int = 3600
    initial_access_tokens: tuple[str, ...] = ()
    plain_initial_access_tokens: tuple[str, ...] = ()
    admin_client_id: str = DEFAULT_ADMIN_CLIENT_ID
    admin_client_secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.issuer)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ConfigurationError(f"idp issuer {self.issuer!r} must be an http(s) URL without query or fragment")
        if self.issuer.endswith("/"):
            raise ConfigurationError(f"idp issuer {self.issuer!r} must not end with '/'")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ConfigurationError(
                f"idp issuer {self.issuer!r}: plain http is only allowed on a loopback host (RFC 6749 §3.1 wants TLS);"
                " put TLS in front and give an https issuer"
            )
        if DCR_SCOPE in self.scopes:
            raise ConfigurationError(f"idp scope {DCR_SCOPE!r} is reserved for the admin client")
        if not self.scopes or any(not s or " " in s for s in self.scopes):
            raise ConfigurationError("idp scopes must be non-empty words without spaces")
        if self.access_token_ttl < 60:
            raise ConfigurationError("idp access token lifetime must be at least 60 seconds")
        if any(len(t) < 16 for t in (*self.initial_access_tokens, *self.plain_initial_access_tokens)):
            raise ConfigurationError("idp initial access tokens must be at least 16 characters long")
        if set(self.initial_access_tokens) & set(self.plain_initial_access_tokens):
            raise ConfigurationError("an idp initial access token cannot be both rotating and plain")
        if self.admin_client_secret is not None and len(self.admin_client_secret) < 16:
            raise ConfigurationError("idp admin client secret must be at least 16 characters long")

    @property
    def allowed_audiences(self) -> tuple[str, ...]:
        """The audiences a token may carry for API scopes: the default first."""
        return (self.api_audience, *(a for a in self.audiences if a != self.api_audience))

    def url(self, path: str) -> str:
        """An absolute endpoint URL under the issuer."""
        return f"{self.issuer}{path}"
