"""Application auth strategies (management-api.md §3): `openid_connect` and `key_auth` configs."""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal

import pydantic
from pydantic import Field, field_validator

from keystile.domain.errors import InvalidParameter
from keystile.domain.urls import check_https_url
from keystile.domain.validation import StrictModel, errors_to_params, rule_error, validate_labels

__all__ = [
    "AUTH_METHODS",
    "OPENID_SCOPES",
    "STRATEGY_TYPES",
    "AuthStrategyCreate",
    "AuthStrategyUpdate",
    "is_secret_key",
    "normalise_strategy_type",
    "validate_configs",
]

STRATEGY_TYPES = ("openid_connect", "key_auth")
CONFIG_KEYS = {"openid_connect": "openid-connect", "key_auth": "key-auth"}
AUTH_METHODS = ("client_credentials", "bearer", "session", "introspection")
KONNECT_ONLY_METHODS = ("password", "authorization_code", "kong_oauth2", "refresh_token")
OPENID_SCOPES = frozenset({"openid", "profile", "email", "address", "phone", "offline_access"})
HONOURED_OIDC_KEYS = frozenset(
    {
        "cache_tokens",
        "token_post_args_names",
        "token_post_args_values",
        "audience",
        "audience_required",
        "session_cookie_name",
        "session_absolute_timeout",
        "scopes_required",
        "session_secret",
        "introspection_client_id",
        "introspection_client_secret",
    }
)
_TOKEN_CHARS = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def is_secret_key(key: str) -> bool:
    """Write-only additional keys: `session_secret`, `client_secret`, anything ending `_secret`/`_password`."""
    return key in ("session_secret", "client_secret") or key.endswith(("_secret", "_password"))


def normalise_strategy_type(value: Any) -> Any:
    if value == "openid-connect":
        return "openid_connect"
    if value == "key-auth":
        return "key_auth"
    return value


def _strategy_type_error(value: Any) -> InvalidParameter:
    reason = f"{value!r} is not a strategy type; use openid_connect or key_auth"
    if isinstance(value, str) and value in ("okta", "auth0", "curity", "azureAd", "http", "rfc7591"):
        reason = (
            f'{value!r} is not a strategy type. For {_vendor(value)} DCR use "strategy_type": "openid_connect" '
            f'and set "dcr_provider_id" to the id of your {value} DCR provider.'
        )
    return InvalidParameter("strategy_type", "enum", reason, choices=list(STRATEGY_TYPES))


def _vendor(value: str) -> str:
    return {"okta": "Okta", "auth0": "Auth0", "curity": "Curity", "azureAd": "Entra ID"}.get(value, value)


class Principals(StrictModel):
    enabled: bool = False


class AuthStrategyCreate(StrictModel):
    name: str = Field(min_length=1, max_length=256)
    display_name: str = Field(max_length=256)
    strategy_type: Literal["openid_connect", "key_auth"]
    configs: dict[str, Any]
    dcr_provider_id: uuid.UUID | None = None
    labels: dict[str, Any] | None = None
    principals: Principals | None = None

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return validate_labels(v)

    @field_validator("dcr_provider_id", mode="before")
    @classmethod
    def _uuid(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return uuid.UUID(v)
            except ValueError as exc:
                raise rule_error("is_uuid", "dcr_provider_id must be a UUID") from exc
        return v


class AuthStrategyUpdate(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=256)
    display_name: str | None = Field(default=None, max_length=256)
    configs: dict[str, Any] | None = None
    dcr_provider_id: uuid.UUID | None = None
    labels: dict[str, Any] | None = None
    principals: Principals | None = None

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return validate_labels(v, allow_null=True)

    @field_validator("dcr_provider_id", mode="before")
    @classmethod
    def _uuid(cls, v: Any) -> Any:
        return AuthStrategyCreate._uuid(v)


class OidcConfig(pydantic.BaseModel):
    """`configs.openid-connect`: the named keys are checked; additional keys are kept as given."""

    model_config = pydantic.ConfigDict(extra="allow", strict=True)

    issuer: str = Field(max_length=256)
    credential_claim: list[str] = Field(min_length=1, max_length=10)
    scopes: list[str] | None = Field(default=None, max_length=50)
    auth_methods: list[str] = Field(min_length=1, max_length=10)
    cache_tokens: bool | None = None
    token_post_args_names: list[str] | None = None
    token_post_args_values: list[str] | None = None
    audience: str | list[str] | None = None
    audience_required: str | list[str] | None = None
    session_cookie_name: str | None = Field(default=None, min_length=1, max_length=128)
    session_absolute_timeout: int | None = Field(default=None, ge=1, le=31_536_000)
    scopes_required: list[str] | None = None
    session_secret: str | None = Field(default=None, min_length=16, max_length=512)
    introspection_client_id: str | None = Field(default=None, max_length=256)
    introspection_client_secret: str | None = Field(default=None, max_length=512)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        try:
            return check_https_url(v, what="issuer")
        except ValueError as exc:
            raise rule_error("type", str(exc)) from exc

    @field_validator("credential_claim")
    @classmethod
    def _claims(cls, v: list[str]) -> list[str]:
        for name in v:
            if not 1 <= len(name) <= 128:
                raise rule_error("max_length", "each credential_claim name must be 1–128 characters", maximum=128)
        return v

    @field_validator("scopes", "scopes_required")
    @classmethod
    def _scopes(cls, v: list[str] | None) -> list[str] | None:
        for scope in v or []:
            if not 1 <= len(scope) <= 128 or " " in scope:
                raise rule_error("max_length", "each scope must be 1–128 characters without spaces", maximum=128)
        return v

    @field_validator("auth_methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        for method in v:
            if method in KONNECT_ONLY_METHODS:
                raise rule_error(
                    "enum",
                    f"auth method {method!r} is not supported: keystile's gateway cannot enforce it; "
                    f"use {', '.join(AUTH_METHODS)}",
                    choices=list(AUTH_METHODS),
                )
            if method not in AUTH_METHODS:
                raise rule_error(
                    "enum", f"auth_methods items must be one of: {', '.join(AUTH_METHODS)}", choices=list(AUTH_METHODS)
                )
        if set(v) == {"session"}:
            raise rule_error(
                "dependent_fields",
                "session needs client_credentials or bearer: a session is set after one of them succeeds",
                dependents=["client_credentials", "bearer"],
            )
        return v

    @field_validator("session_cookie_name")
    @classmethod
    def _cookie(cls, v: str | None) -> str | None:
        if v is not None and not _TOKEN_CHARS.match(v):
            raise rule_error("matches_regex", "session_cookie_name may only use cookie-name characters")
        return v


class Ttl(StrictModel):
    value: int = Field(ge=1)
    unit: Literal["days", "weeks", "years"]


class KeyAuthConfig(StrictModel):
    key_names: list[str] | None = Field(default=None, min_length=1, max_length=10)
    ttl: Ttl | None = None

    @field_validator("key_names")
    @classmethod
    def _names(cls, v: list[str] | None) -> list[str] | None:
        for name in v or []:
            if not 1 <= len(name) <= 256 or not _TOKEN_CHARS.match(name):
                raise rule_error("matches_regex", "each key name must be 1–256 header-name (token) characters")
        return v


def validate_configs(strategy_type: str, configs: dict[str, Any]) -> list[InvalidParameter]:
    """Problems in `configs` for this strategy type (one pass)."""
    wanted = CONFIG_KEYS[strategy_type]
    keys = list(configs)
    if keys != [wanted]:
        return [
            InvalidParameter(
                "configs",
                "invalid",
                f"configs must hold exactly one key, {wanted!r}, for strategy_type {strategy_type}"
                + (f" (got {', '.join(map(repr, keys))})" if keys else ""),
            )
        ]
    body = configs[wanted]
    prefix = ("configs", wanted)
    if not isinstance(body, dict):
        return [InvalidParameter(f"configs.{wanted}", "is_object", f"configs.{wanted} must be an object")]
    model: type[pydantic.BaseModel] = OidcConfig if strategy_type == "openid_connect" else KeyAuthConfig
    try:
        model.model_validate(body)
    except pydantic.ValidationError as exc:
        return errors_to_params(exc, prefix=prefix)
    if strategy_type == "openid_connect":
        names = body.get("token_post_args_names")
        values = body.get("token_post_args_values")
        if (names is None) != (values is None) or (names is not None and len(names) != len(values or [])):
            return [
                InvalidParameter(
                    "configs.openid-connect.token_post_args_names",
                    "dependent_fields",
                    "token_post_args_names and token_post_args_values must be arrays of equal length",
                    dependents=["configs.openid-connect.token_post_args_values"],
                )
            ]
    return []


def strategy_type_problem(raw: Any) -> InvalidParameter | None:
    """The enum item for a strategy_type outside the allowed set (with the Konnect Okta-page hint)."""
    value = normalise_strategy_type(raw)
    if isinstance(value, str) and value in STRATEGY_TYPES:
        return None
    return _strategy_type_error(raw)
