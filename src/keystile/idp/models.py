"""Authlib model objects over the store rows: a client (`ClientMixin`), a registration access token and an
issued access token (`TokenMixin`). Built fresh for each request, so per-request values (the audience a
token request selected) may ride on them.
"""

from __future__ import annotations

import time
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin

from keystile.idp.config import DCR_SCOPE
from keystile.idp.store import ClientRow, TokenRow, secret_matches

__all__ = ["SUPPORTED_AUTH_METHODS", "IdpClient", "IssuedToken", "RegistrationToken", "scope_words"]

#: Client authentication methods of this IdP (RFC 7591 §2 `token_endpoint_auth_method` values).
SUPPORTED_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


def scope_words(scope: str | None) -> list[str]:
    """The scope tokens of an RFC 6749 §3.3 scope string, in order, without duplicates."""
    words: list[str] = []
    for word in (scope or "").split():
        if word not in words:
            words.append(word)
    return words


class IdpClient(ClientMixin):  # type: ignore[misc]  # authlib ships no type hints
    """A registered client (or the admin client) as Authlib sees it."""

    def __init__(self, row: ClientRow) -> None:
        self.row = row
        #: the `aud` the current token request selected (set by the grant, read by the token generator)
        self.token_audience: str | None = None

    @property
    def client_id(self) -> str:
        return self.row.client_id

    @property
    def metadata(self) -> dict[str, Any]:
        return self.row.metadata

    @property
    def is_admin(self) -> bool:
        return self.row.is_admin

    @property
    def client_info(self) -> dict[str, Any]:
        """RFC 7591 §3.2.1 client information, without the secret (only its hash is kept)."""
        return {
            "client_id": self.row.client_id,
            "client_id_issued_at": self.row.issued_at,
            "client_secret_expires_at": 0,
        }

    @property
    def client_metadata(self) -> dict[str, Any]:
        return dict(self.row.metadata)

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # no authorization endpoint: machine-to-machine only

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The scope to grant: the requested one when the client registered all of it, its registered scope
        when none is requested (RFC 6749 §3.3 default), else `None` (→ `invalid_scope`)."""
        registered = scope_words(self.row.metadata.get("scope"))
        if scope is None:
            return " ".join(registered)
        requested = scope_words(scope)
        if not set(requested) <= set(registered):
            return None
        return " ".join(requested)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(client_secret, self.row.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """At the token endpoint only the registered method (RFC 7591 §2); elsewhere either secret method."""
        if endpoint == "token":
            return bool(method == self.row.metadata.get("token_endpoint_auth_method", "client_secret_basic"))
        return method in SUPPORTED_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.row.metadata.get("grant_types", [])

    def may_mint_initial_access_tokens(self) -> bool:
        return self.row.is_admin and DCR_SCOPE in scope_words(self.row.metadata.get("scope"))


class RegistrationToken(TokenMixin):  # type: ignore[misc]  # authlib ships no type hints
    """A registration access token (RFC 7592 §1) that matched the client it names."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id

    def check_client(self, client: IdpClient) -> bool:
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        return ""

    def get_expires_in(self) -> int:
        return 0

    def is_expired(self) -> bool:
        return False

    def is_revoked(self) -> bool:
        return False


class IssuedToken(TokenMixin):  # type: ignore[misc]  # authlib ships no type hints
    """An access token this server issued and recorded, for RFC 7662 introspection."""

    def __init__(self, row: TokenRow, client_exists: bool) -> None:
        self.row = row
        self.client_exists = client_exists

    def check_client(self, client: IdpClient) -> bool:
        return bool(client.get_client_id() == self.row.client_id)

    def get_scope(self) -> str:
        return str(self.row.claims.get("scope", ""))

    def get_expires_in(self) -> int:
        return max(0, self.row.expires_at - int(time.time()))

    def is_expired(self) -> bool:
        return self.row.expires_at <= time.time()

    def is_revoked(self) -> bool:
        """Revoked with its client, or used up as an initial access token."""
        return self.row.revoked or self.row.consumed_at is not None or not self.client_exists
