"""The built-in IdP's authorization server, assembled from Authlib's RFC implementations.

- RFC 6749 §4.4 client credentials: `ClientCredentialsGrant` (client_secret_basic, client_secret_post);
- RFC 9068 JWT access tokens: `JWTBearerTokenGenerator`, RS256, with `cid` added and `aud` chosen per
  RFC 8707 (`resource`) or the common `audience` form parameter;
- RFC 7591 registration: `ClientRegistrationEndpoint`, guarded by an initial access token (a static one, or a
  single-use token the admin client minted with scope `dcr`, like the `oidc-provider` peer of
  contracts/dcr-providers.md §4.1);
- RFC 7592 management: `ClientConfigurationEndpoint`; every PUT issues a new registration access token and a
  new client secret (except for clients registered with a *plain* static IAT, which keep theirs, like the
  peer's `plain_iat` clients);
- RFC 7662 introspection: `IntrospectionEndpoint`, for any registered client.

Protocol code only: requests come in as Authlib request objects (`FormRequest`, `JsonBodyRequest`), built by
`keystile.idp.app`; `handle_response` gives back a plain `(status, body, headers)` triple.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientCredentialsGrant,
    InvalidClientError,
    InvalidScopeError,
    JsonPayload,
    JsonRequest,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6750 import InvalidTokenError
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint, InvalidClientMetadataError
from authlib.oauth2.rfc7592 import ClientConfigurationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc import jwt
from joserfc.errors import JoseError

from keystile.idp.claims import IdpClientMetadataClaims
from keystile.idp.config import DCR_SCOPE, IdpConfig
from keystile.idp.keys import LEEWAY_SECONDS, KeyRing
from keystile.idp.models import SUPPORTED_AUTH_METHODS, IdpClient, IssuedToken, RegistrationToken, scope_words
from keystile.idp.store import IdpStore, secret_matches

__all__ = [
    "FormRequest",
    "IdpAuthorizationServer",
    "InvalidTargetError",
    "JsonBodyRequest",
    "ResponseTriple",
    "server_metadata",
]

log = logging.getLogger("keystile.idp")

#: What `handle_response` returns: status, body (a JSON object, or "" for 204) and header pairs.
ResponseTriple = tuple[int, dict[str, Any] | str, list[tuple[str, str]]]


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]  # authlib ships no type hints
    """RFC 8707 §2: the requested resource is invalid, unknown or not allowed for this request."""

    error = "invalid_target"


def server_metadata(config: IdpConfig) -> dict[str, Any]:
    """The RFC 8414 §2 authorization server metadata, also served as OpenID discovery.

    There is no authorization endpoint (no user login), hence `response_types_supported: []`.
    """
    return {
        "issuer": config.issuer,
        "token_endpoint": config.url("/token"),
        "jwks_uri": config.url("/jwks"),
        "registration_endpoint": config.url("/register"),
        "introspection_endpoint": config.url("/introspect"),
        "token_endpoint_auth_methods_supported": list(SUPPORTED_AUTH_METHODS),
        "introspection_endpoint_auth_methods_supported": list(SUPPORTED_AUTH_METHODS),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "scopes_supported": [*config.scopes, DCR_SCOPE],
        "subject_types_supported": ["public"],
        "claims_supported": ["iss", "sub", "aud", "client_id", "cid", "scope", "exp", "iat", "jti"],
        "access_token_signing_alg_values_supported": ["RS256"],
    }


# -- request objects ----------------------------------------------------------------------------------------


class _FormPayload(OAuth2Payload):  # type: ignore[misc]  # authlib ships no type hints
    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class FormRequest(OAuth2Request):  # type: ignore[misc]  # authlib ships no type hints
    """An `application/x-www-form-urlencoded` request (token and introspection endpoints)."""

    def __init__(self, method: str, uri: str, headers: Mapping[str, str], pairs: Sequence[tuple[str, str]]) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = _FormPayload(pairs)

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return dict(self.payload.data)


class _JsonBody(JsonPayload):  # type: ignore[misc]  # authlib ships no type hints
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        return self._data


class JsonBodyRequest(JsonRequest):  # type: ignore[misc]  # authlib ships no type hints
    """A JSON request (registration and client configuration endpoints); `client_id` from the URL path."""

    def __init__(
        self, method: str, uri: str, headers: Mapping[str, str], data: dict[str, Any], client_id: str | None = None
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = _JsonBody(data)
        self.path_client_id = client_id
        #: set by the endpoints: the registration access token the response carries
        self.registration_access_token: str | None = None
        #: set on PUT: the new client secret the response carries
        self.new_client_secret: str | None = None
        #: set at registration by the initial access token: whether the client's secret rotates on every PUT
        self.rotates_secret = True


def _bearer(headers: Mapping[str, str]) -> str:
    """The RFC 6750 §2.1 bearer token of a request.

    Raises:
        InvalidTokenError: no `Authorization: Bearer` header.
    """
    value = headers.get("Authorization") or headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidTokenError("a bearer token is required")
    return token


def _unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWS this server has just signed itself."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


# -- token issuance -----------------------------------------------------------------------------------------


class _TokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]  # authlib ships no type hints
    """RFC 9068 access tokens signed with the active key of the key ring."""

    def __init__(self, config: IdpConfig, keyring: KeyRing) -> None:
        super().__init__(issuer=config.issuer, alg="RS256", expires_generator=config.access_token_ttl)
        self._config = config
        self._keyring = keyring

    def get_jwks(self) -> Any:
        return self._keyring.signing_key_set()

    def get_audiences(self, client: IdpClient, user: Any, scope: str) -> str:
        return client.token_audience or self._config.api_audience

    def get_extra_claims(self, client: IdpClient, grant_type: str, user: Any, scope: str) -> dict[str, Any]:
        # Okta's name for the client id claim; keystile's `credential_claim` may name it (dcr-providers.md §2.7).
        return {"cid": client.get_client_id()}

    def get_jti(self, client: IdpClient, grant_type: str, user: Any, scope: str) -> str:
        return secrets.token_urlsafe(24)


class _ClientCredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]  # authlib ships no type hints
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(SUPPORTED_AUTH_METHODS)

    def validate_token_request(self) -> None:
        super().validate_token_request()
        client: IdpClient = self.request.client
        scope = client.get_allowed_scope(self.request.payload.scope)
        if scope is None:
            raise InvalidScopeError("the client is not registered for the requested scope")
        server: IdpAuthorizationServer = self.server
        client.token_audience = server.select_audience(client, scope_words(scope), self.request.payload.datalist)


# -- registration (RFC 7591) and management (RFC 7592) --------------------------------------------------------


class _RegistrationEndpoint(ClientRegistrationEndpoint):  # type: ignore[misc]  # authlib ships no type hints
    def __init__(self, server: IdpAuthorizationServer) -> None:
        super().__init__(server, claims_classes=[IdpClientMetadataClaims])
        self.idp = server

    def authenticate_token(self, request: JsonBodyRequest) -> str:
        """An initial access token (RFC 7591 §3): static, or minted by the admin client (used up here).

        Raises:
            InvalidTokenError: missing, unknown, expired or already used (401).
        """
        token = _bearer(request.headers)
        rotates = self.idp.store.static_initial_access_token(token)
        if rotates is not None:
            request.rotates_secret = rotates
            return "static initial access token" if rotates else "plain initial access token"
        claims = self.idp.verify_access_token(token)
        if claims is not None and self.idp.is_minted_initial_access_token(claims):
            return "minted initial access token"
        raise InvalidTokenError("the initial access token is unknown, expired or already used")

    def get_server_metadata(self) -> dict[str, Any]:
        return self.idp.metadata

    def save_client(
        self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: JsonBodyRequest
    ) -> IdpClient:
        rat = secrets.token_urlsafe(32)
        row = self.idp.store.add_client(
            client_id=client_info["client_id"],
            client_secret=client_info["client_secret"],
            metadata=client_metadata,
            issued_at=client_info["client_id_issued_at"],
            registration_access_token=rat,
            rotates_secret=request.rotates_secret,
        )
        request.registration_access_token = rat
        log.info("idp registered client %s (%s)", row.client_id, request.credential)
        return IdpClient(row)

    def generate_client_registration_info(self, client: IdpClient, request: JsonBodyRequest) -> dict[str, Any]:
        return {
            "registration_client_uri": self.idp.registration_client_uri(client.client_id),
            "registration_access_token": request.registration_access_token,
        }


class _ConfigurationEndpoint(ClientConfigurationEndpoint):  # type: ignore[misc]  # authlib ships no type hints
    def __init__(self, server: IdpAuthorizationServer) -> None:
        super().__init__(server, claims_classes=[IdpClientMetadataClaims])
        self.idp = server

    def authenticate_token(self, request: JsonBodyRequest) -> RegistrationToken:
        """The registration access token of the client the URL names (RFC 7592 §1).

        Raises:
            InvalidTokenError: missing, or not the current token of an existing client (401).
        """
        token = _bearer(request.headers)
        row = self.idp.store.get_client(request.path_client_id or "")
        if row is None or row.is_admin or not secret_matches(token, row.rat_hash):
            raise InvalidTokenError("the registration access token is not valid for this client")
        request.registration_access_token = token
        return RegistrationToken(row.client_id)

    def authenticate_client(self, request: JsonBodyRequest) -> IdpClient | None:
        return self.idp.query_client(request.path_client_id or "")

    def extract_client_metadata(self, request: JsonBodyRequest) -> dict[str, Any]:
        """As Authlib's, minus its `print` of the validation error (an IdP writes no request data to stdout)."""
        claims = IdpClientMetadataClaims(dict(request.payload.data), {}, {}, self.idp.metadata)
        try:
            claims.validate()
        except JoseError as error:
            raise InvalidClientMetadataError(error.description) from error
        registered: dict[str, Any] = claims.get_registered_claims()
        return registered

    def revoke_access_token(self, request: JsonBodyRequest, token: RegistrationToken) -> None:
        # Reached only when the client vanished after its token was checked: the token's hash lived on the
        # client row, so it went with it and there is nothing left to revoke.
        log.info("idp client %s vanished during a configuration request", token.client_id)

    def check_permission(self, client: IdpClient, request: JsonBodyRequest) -> bool:
        return not client.is_admin

    def delete_client(self, client: IdpClient, request: JsonBodyRequest) -> None:
        self.idp.store.delete_client(client.client_id)
        log.info("idp deleted client %s", client.client_id)

    def update_client(self, client: IdpClient, client_metadata: dict[str, Any], request: JsonBodyRequest) -> IdpClient:
        """RFC 7592 §2.2: the request replaces the metadata; a new RAT is always issued, and a new secret unless
        the client was registered with a plain initial access token."""
        new_secret = self.generate_client_secret() if client.row.rotates_secret else None
        new_rat = secrets.token_urlsafe(32)
        row = self.idp.store.update_client(client.client_id, client_metadata, new_secret, new_rat)
        if row is None:
            raise InvalidClientError(status_code=401, description="The client does not exist on this server.")
        request.new_client_secret = new_secret
        request.registration_access_token = new_rat
        log.info("idp updated client %s (rotated: secret %s, RAT yes)", row.client_id, new_secret is not None)
        return IdpClient(row)

    @staticmethod
    def generate_client_secret() -> str:
        return secrets.token_hex(24)

    def create_read_client_response(self, client: IdpClient, request: JsonBodyRequest) -> ResponseTriple:
        status, body, headers = super().create_read_client_response(client, request)
        if request.new_client_secret is not None:
            body["client_secret"] = request.new_client_secret
        return status, body, headers

    def generate_client_registration_info(self, client: IdpClient, request: JsonBodyRequest) -> dict[str, Any]:
        return {
            "registration_client_uri": self.idp.registration_client_uri(client.client_id),
            "registration_access_token": request.registration_access_token,
        }

    def get_server_metadata(self) -> dict[str, Any]:
        return self.idp.metadata


# -- introspection (RFC 7662) -------------------------------------------------------------------------------


class _IntrospectionEndpoint(IntrospectionEndpoint):  # type: ignore[misc]  # authlib ships no type hints
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = list(SUPPORTED_AUTH_METHODS)

    def __init__(self, server: IdpAuthorizationServer) -> None:
        super().__init__(server)
        self.idp = server

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        claims = self.idp.verify_access_token(token_string)
        if claims is None:
            return None
        row = self.idp.store.get_token(str(claims.get("jti")))
        if row is None:
            return None
        return IssuedToken(row, client_exists=self.idp.store.get_client(row.client_id) is not None)

    def check_permission(self, token: IssuedToken, client: IdpClient, request: FormRequest) -> bool:
        # A development IdP: any registered client that authenticates may introspect any token.
        return True

    def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
        claims = token.row.claims
        keys = ("scope", "client_id", "cid", "sub", "aud", "iss", "exp", "iat", "jti")
        return {"active": True, "token_type": "Bearer", **{k: claims[k] for k in keys if k in claims}}


# -- the server ---------------------------------------------------------------------------------------------


class IdpAuthorizationServer(AuthorizationServer):  # type: ignore[misc]  # authlib ships no type hints
    """Authlib's `AuthorizationServer` wired to the IdP's store and key ring."""

    def __init__(self, config: IdpConfig, store: IdpStore, keyring: KeyRing) -> None:
        super().__init__(scopes_supported=[*config.scopes, DCR_SCOPE])
        self.config = config
        self.store = store
        self.keyring = keyring
        self.issuer = config.issuer
        self.metadata = server_metadata(config)
        self.register_grant(_ClientCredentialsGrant)
        self.register_token_generator("default", _TokenGenerator(config, keyring))
        self.register_endpoint(_RegistrationEndpoint(self))
        self.register_endpoint(_ConfigurationEndpoint(self))
        self.register_endpoint(_IntrospectionEndpoint(self))

    # Authlib hooks ---------------------------------------------------------------------------------------

    def query_client(self, client_id: str) -> IdpClient | None:
        row = self.store.get_client(client_id)
        return None if row is None else IdpClient(row)

    def save_token(self, token: dict[str, Any], request: FormRequest) -> None:
        self.store.record_token(_unverified_claims(token["access_token"]))

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        return request

    def create_json_request(self, request: JsonBodyRequest) -> JsonBodyRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> ResponseTriple:
        return status, body, list(headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        log.debug("idp signal %s", name)

    # IdP rules -------------------------------------------------------------------------------------------

    def registration_client_uri(self, client_id: str) -> str:
        return self.config.url(f"/register/{client_id}")

    def select_audience(self, client: IdpClient, scopes: list[str], params: Mapping[str, list[str]]) -> str:
        """The `aud` of a token: RFC 8707 `resource` or `audience` if given, else the default API audience.

        A `dcr` token (admin client, IAT minting) is for this server itself: its `aud` is the issuer.

        Raises:
            InvalidScopeError: `dcr` combined with other scopes.
            InvalidTargetError: several audiences, or one this server does not issue tokens for.
        """
        requested = {*params.get("resource", []), *params.get("audience", [])}
        if len(requested) > 1:
            raise InvalidTargetError("ask for one resource (audience) per token")
        target = next(iter(requested), None)
        if DCR_SCOPE in scopes:
            if len(scopes) > 1:
                raise InvalidScopeError(f"scope {DCR_SCOPE} cannot be combined with other scopes")
            if target not in (None, self.issuer):
                raise InvalidTargetError(f"a {DCR_SCOPE} token is only for this server")
            return self.issuer
        if target is None:
            return self.config.api_audience
        if target not in self.config.allowed_audiences:
            raise InvalidTargetError("unknown resource")
        return target

    def is_minted_initial_access_token(self, claims: dict[str, Any]) -> bool:
        """Whether verified claims are a `dcr` token of the admin client for this server, used up by this call."""
        if DCR_SCOPE not in scope_words(claims.get("scope")) or claims.get("aud") != self.issuer:
            return False
        admin = self.query_client(str(claims.get("client_id")))
        if admin is None or not admin.may_mint_initial_access_tokens():
            return False
        return self.store.consume_token(str(claims["jti"]), int(time.time()))

    def verify_access_token(self, token: str) -> dict[str, Any] | None:
        """The claims of an unexpired access token this server signed with a published key, else `None`."""
        try:
            decoded = jwt.decode(token, self.keyring.verification_key_set(), algorithms=["RS256"])
            jwt.JWTClaimsRegistry(
                leeway=LEEWAY_SECONDS, iss={"essential": True, "value": self.issuer}, jti={"essential": True}
            ).validate(decoded.claims)
        except (JoseError, ValueError):
            return None
        return dict(decoded.claims)
