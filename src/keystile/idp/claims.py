"""Client metadata rules of the built-in IdP, on Authlib's RFC 7591 `ClientMetadataClaims`.

The IdP has no authorization endpoint (no user login: machine-to-machine only). It still records the
registration of a keystile application that has a redirect URI (`grant_types: ["authorization_code",
"client_credentials"]`, `response_types: ["code"]`, `redirect_uris`), as any RFC 7591 server would, but such a
client can only use client credentials here: discovery advertises only what works. The rules:

- `grant_types` ⊆ {`client_credentials`, `authorization_code`}; omitted → `["client_credentials"]` (RFC 7591 §2
  lets a server substitute a value);
- `response_types` ⊆ {`code`}, and `code` exactly when `authorization_code` is asked for (RFC 7591 §2.1);
  omitted, RFC 7591 §2 defaults it to `["code"]`, which needs `redirect_uris`: 400 `invalid_redirect_uri`
  without them, as `oidc-provider` answers. A machine client sends `response_types: []`;
- `scope` must name API scopes of the server; `dcr` is reserved for the admin client. Omitted, the client
  gets every API scope;
- `token_endpoint_auth_method` is `client_secret_basic` (default) or `client_secret_post`.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7591 import ClientMetadataClaims, InvalidClientMetadataError, InvalidRedirectURIError
from joserfc.errors import JoseError

from keystile.idp.config import DCR_SCOPE
from keystile.idp.models import SUPPORTED_AUTH_METHODS, scope_words

__all__ = ["REGISTRABLE_GRANT_TYPES", "IdpClientMetadataClaims"]

#: Grant types a registration may carry (only `client_credentials` is served by the token endpoint).
REGISTRABLE_GRANT_TYPES = ("client_credentials", "authorization_code")


def _safe(text: str) -> str:
    """Text fit for an RFC 6749 §5.2 `error_description` (no `"`, `\\` or control characters)."""
    return "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "?" for c in text)[:200]


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


class IdpClientMetadataClaims(ClientMetadataClaims):  # type: ignore[misc]  # authlib ships no type hints
    """RFC 7591 §2 metadata, checked against this server's metadata (`self.params`)."""

    @classmethod
    def get_claims_options(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        # Authlib's options treat `response_types: []` as the default `["code"]`; the checks below replace them.
        return {}

    def _server(self, key: str) -> list[str]:
        return list(self.params.get(key) or [])

    def validate_redirect_uris(self) -> None:
        uris = self.get("redirect_uris")
        if uris is not None and not _is_str_list(uris):
            raise InvalidRedirectURIError("redirect_uris must be an array of strings")
        try:
            super().validate_redirect_uris()
        except JoseError as exc:  # RFC 7591 §3.2.2: a bad redirect URI has its own error code
            raise InvalidRedirectURIError("redirect_uris must be absolute URLs without a fragment") from exc

    def validate_token_endpoint_auth_method(self) -> None:
        super().validate_token_endpoint_auth_method()
        if self["token_endpoint_auth_method"] not in SUPPORTED_AUTH_METHODS:
            raise InvalidClientMetadataError(
                f"token_endpoint_auth_method must be one of {', '.join(SUPPORTED_AUTH_METHODS)}"
            )

    def validate_grant_types(self) -> None:
        if "grant_types" not in self:
            self["grant_types"] = ["client_credentials"]
        grant_types = self["grant_types"]
        if not _is_str_list(grant_types) or not grant_types or not set(grant_types) <= set(REGISTRABLE_GRANT_TYPES):
            raise InvalidClientMetadataError(
                f"grant_types must be a non-empty subset of {', '.join(REGISTRABLE_GRANT_TYPES)}"
            )

    def validate_response_types(self) -> None:
        # RFC 7591 §2: "If omitted, the default is that the client will use only the code response type."
        response_types = self.get("response_types", ["code"])
        if not _is_str_list(response_types) or not set(response_types) <= {"code"}:
            raise InvalidClientMetadataError("response_types must be [] (or [code] with authorization_code)")
        if "code" in response_types and not self.get("redirect_uris"):
            raise InvalidRedirectURIError(
                "redirect_uris is required for response_types code (send response_types: [] for a machine client)"
            )
        # RFC 7591 §2.1: authorization_code goes with the code response type, and only with it
        if ("code" in response_types) != ("authorization_code" in self["grant_types"]):
            raise InvalidClientMetadataError("response_types code and grant_types authorization_code go together")
        self["response_types"] = list(response_types)

    def validate_scope(self) -> None:
        scope = self.get("scope")
        api_scopes = [s for s in self._server("scopes_supported") if s != DCR_SCOPE]
        if scope is None:
            self["scope"] = " ".join(api_scopes)
            return
        if not isinstance(scope, str):
            raise InvalidClientMetadataError("scope must be a space-separated string")
        words = scope_words(scope)
        if DCR_SCOPE in words:
            raise InvalidClientMetadataError(f"scope {DCR_SCOPE} is reserved for the admin client")
        unknown = [w for w in words if w not in api_scopes]
        if unknown:
            raise InvalidClientMetadataError(
                f"unknown scope: {_safe(' '.join(unknown))} (supported: {' '.join(api_scopes)})"
            )
        self["scope"] = " ".join(words)
