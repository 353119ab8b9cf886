"""DCR provider resources (management-api.md §2): types, per-type `dcr_config` rules, write-only fields."""

from __future__ import annotations

from typing import Any, Literal

import pydantic
from pydantic import Field, field_validator

from keystile.domain.errors import InvalidParameter
from keystile.domain.urls import check_https_url
from keystile.domain.validation import StrictModel, errors_to_params, rule_error, validate_labels

__all__ = [
    "PROVIDER_TYPES",
    "SECRET_FIELDS",
    "DcrProviderCreate",
    "DcrProviderUpdate",
    "validate_dcr_config",
]

PROVIDER_TYPES = ("okta", "auth0", "curity", "azureAd", "http", "rfc7591")
ProviderType = Literal["okta", "auth0", "curity", "azureAd", "http", "rfc7591"]
SECRET_FIELDS = frozenset({"dcr_token", "initial_client_secret", "api_key", "initial_access_token"})
Name = Field(min_length=1, max_length=256)


def _url(value: str | None, max_length: int = 256) -> str | None:
    if value is None:
        return None
    try:
        return check_https_url(value, max_length=max_length)
    except ValueError as exc:
        raise rule_error("type", str(exc)) from exc


class _Base(StrictModel):
    labels: dict[str, Any] | None = None

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return validate_labels(v)


class DcrProviderCreate(_Base):
    name: str = Name
    display_name: str | None = Field(default=None, min_length=1, max_length=256)
    provider_type: str = Field(json_schema_extra={"enum": list(PROVIDER_TYPES)})
    issuer: str = Field(max_length=256, json_schema_extra={"format": "uri"})
    dcr_config: dict[str, Any]

    @field_validator("provider_type")
    @classmethod
    def _type(cls, v: str) -> str:
        if v not in PROVIDER_TYPES:
            reason = f"provider_type must be one of: {', '.join(PROVIDER_TYPES)}"
            if v == "kongIdentity":
                reason = "kongIdentity is Konnect's own IdP and is not supported by keystile; " + reason
            raise rule_error("enum", reason, choices=list(PROVIDER_TYPES))
        return v

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        return _url(v) or v


class DcrProviderUpdate(_Base):
    name: str | None = Field(default=None, min_length=1, max_length=256)
    display_name: str | None = Field(default=None, min_length=1, max_length=256)
    issuer: str | None = Field(default=None, max_length=256)
    dcr_config: dict[str, Any] | None = None

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str | None) -> str | None:
        return _url(v)

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return validate_labels(v, allow_null=True)


# ---- per-type dcr_config ------------------------------------------------------------------------------


class _Cfg(StrictModel):
    pass


class OktaConfig(_Cfg):
    dcr_token: str | None = Field(default=None, min_length=1, max_length=256)


class Auth0Config(_Cfg):
    initial_client_id: str | None = Field(default=None, min_length=1, max_length=256)
    initial_client_secret: str | None = Field(default=None, min_length=1, max_length=256)
    initial_client_audience: str | None = Field(default=None, max_length=256)
    use_developer_managed_scopes: bool | None = None


class CurityConfig(_Cfg):
    initial_client_id: str | None = Field(default=None, min_length=1, max_length=256)
    initial_client_secret: str | None = Field(default=None, min_length=1, max_length=256)
    iat_scope: str | None = Field(default=None, min_length=1, max_length=256)
    management_scope: str | None = Field(default=None, min_length=1, max_length=256)


class AzureAdConfig(_Cfg):
    initial_client_id: str | None = Field(default=None, min_length=1, max_length=256)
    initial_client_secret: str | None = Field(default=None, min_length=1, max_length=256)
    graph_base_url: str | None = None
    login_base_url: str | None = None
    secret_lifetime_days: int | None = Field(default=None, ge=1, le=3650)
    max_secrets: int | None = Field(default=None, ge=1, le=10)
    purge_on_delete: bool | None = None

    @field_validator("graph_base_url", "login_base_url")
    @classmethod
    def _urls(cls, v: str | None) -> str | None:
        return _url(v)


class HttpConfig(_Cfg):
    dcr_base_url: str | None = None
    api_key: str | None = Field(default=None, min_length=12, max_length=256, pattern=r"^[a-zA-Z0-9_]+$")
    disable_event_hooks: bool | None = None
    disable_refresh_secret: bool | None = None
    allow_multiple_credentials: bool | None = None

    @field_validator("dcr_base_url")
    @classmethod
    def _base(cls, v: str | None) -> str | None:
        return _url(v)


class Rfc7591Config(_Cfg):
    registration_endpoint: str | None = None
    initial_access_token: str | None = Field(default=None, min_length=1, max_length=4096)
    initial_client_id: str | None = Field(default=None, min_length=1, max_length=256)
    initial_client_secret: str | None = Field(default=None, min_length=1, max_length=256)
    initial_client_scope: str | None = Field(default=None, min_length=1, max_length=256)
    rotates_secret_on_put: bool | None = None

    @field_validator("registration_endpoint")
    @classmethod
    def _reg(cls, v: str | None) -> str | None:
        return _url(v, 2048)


CONFIG_MODELS: dict[str, type[_Cfg]] = {
    "okta": OktaConfig,
    "auth0": Auth0Config,
    "curity": CurityConfig,
    "azureAd": AzureAdConfig,
    "http": HttpConfig,
    "rfc7591": Rfc7591Config,
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "okta": ("dcr_token",),
    "auth0": ("initial_client_id", "initial_client_secret"),
    "curity": ("initial_client_id", "initial_client_secret"),
    "azureAd": ("initial_client_id", "initial_client_secret"),
    "http": ("dcr_base_url", "api_key"),
    "rfc7591": (),
}
# Defaults shown in responses (contract: "default false").
DEFAULTS: dict[str, dict[str, Any]] = {
    "auth0": {"initial_client_audience": None, "use_developer_managed_scopes": False},
    "http": {"disable_event_hooks": False, "disable_refresh_secret": False, "allow_multiple_credentials": False},
    "rfc7591": {"rotates_secret_on_put": False},
}


def validate_dcr_config(
    provider_type: str, merged: dict[str, Any], present_secrets: set[str]
) -> list[InvalidParameter]:
    """Every problem in a (merged) dcr_config for this type; `present_secrets` are secrets already stored."""
    model = CONFIG_MODELS[provider_type]
    try:
        model.model_validate(merged)
    except pydantic.ValidationError as exc:
        return errors_to_params(exc, prefix=("dcr_config",))
    items: list[InvalidParameter] = []
    have = {k for k, v in merged.items() if v is not None} | present_secrets
    for key in REQUIRED[provider_type]:
        if key not in have:
            items.append(InvalidParameter(f"dcr_config.{key}", "required", f"dcr_config.{key} is required"))
    if provider_type == "rfc7591":
        if "initial_access_token" in have and "initial_client_id" in have:
            items.append(
                InvalidParameter(
                    "dcr_config.initial_access_token",
                    "dependent_fields",
                    "give either a static initial_access_token or initial_client_id + initial_client_secret "
                    "(to mint one before each registration), not both",
                    dependents=["dcr_config.initial_client_id"],
                )
            )
        if ("initial_client_id" in have) != ("initial_client_secret" in have):
            items.append(
                InvalidParameter(
                    "dcr_config.initial_client_id",
                    "dependent_fields",
                    "initial_client_id and initial_client_secret go together",
                    dependents=["dcr_config.initial_client_secret"],
                )
            )
    return items


def public_config(provider_type: str, stored: dict[str, Any]) -> dict[str, Any]:
    """The `dcr_config` a response shows: non-secret keys with defaults applied."""
    out = dict(DEFAULTS.get(provider_type, {}))
    out.update({k: v for k, v in stored.items() if k not in SECRET_FIELDS})
    return out
