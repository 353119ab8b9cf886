"""Applications, credentials and registrations as the Portal API takes them (contracts/portal-api.md §4–§6).

Request models only; the services check references (strategies offered by the portal, versions published) and
turn them into `missing_reference` items of the same 400.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from keystile.domain.validation import StrictModel, rule_error

__all__ = [
    "API_KEY_PREFIX",
    "APP_STATUSES",
    "DCR_REFERENCE_REASON",
    "FIXED_STRATEGY_REASON",
    "MAX_API_KEYS",
    "MAX_APPLICATIONS",
    "REGISTRATION_STATUSES",
    "ApplicationCreate",
    "ApplicationUpdate",
    "CredentialCreate",
    "CredentialUpdate",
    "RegistrationCreate",
    "RegistrationStatusUpdate",
    "check_redirect_uri",
    "credential_type",
    "too_many",
]

MAX_APPLICATIONS = 500
MAX_API_KEYS = 20
API_KEY_PREFIX = "kak_"
APP_STATUSES = ("provisioning", "active", "deleting")
REGISTRATION_STATUSES = ("approved", "pending", "revoked", "rejected")
DCR_REFERENCE_REASON = "reference_id cannot be set when using Dynamic Client Registration"
FIXED_STRATEGY_REASON = "an application's auth strategy is fixed; create a new application"

Name = Annotated[str, Field(max_length=255)]


def too_many(what: str, limit: int) -> str:
    """The Konnect 403 detail for a per-owner limit ("Maximum number of Applications exceeded. Max Allowed: 500")."""
    return f"Maximum number of {what} exceeded. Max Allowed: {limit}"


def credential_type(strategy_type: str, dcr_provider_id: object) -> str:
    """`key_auth`, `client_credentials` (DCR) or `self_managed_client_credentials` (portal-api.md §3)."""
    if strategy_type == "key_auth":
        return "key_auth"
    return "client_credentials" if dcr_provider_id is not None else "self_managed_client_credentials"


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_redirect_uri(value: str) -> str:
    """https, or http for a loopback host; absolute, no fragment (RFC 6749 §3.1.2)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise rule_error("invalid", "redirect_uri must be an absolute https URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise rule_error("invalid", "redirect_uri must use https (http is allowed only for loopback hosts)")
    if parts.fragment:
        raise rule_error("invalid", "redirect_uri must not contain a fragment")
    if len(value) > 2048:
        raise rule_error("max_length", "redirect_uri must be at most 2048 characters", maximum=2048)
    return value


def _trimmed_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise rule_error("min_length", "name must be 1–255 characters after trimming", minimum=1)
    return value


class ApplicationCreate(StrictModel):
    name: Name
    description: Annotated[str, Field(max_length=255)] | None = None
    auth_strategy_id: uuid.UUID | None = None
    redirect_uri: str | None = None
    reference_id: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    scopes: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = None

    @field_validator("auth_strategy_id", mode="before")
    @classmethod
    def _uuid(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return uuid.UUID(value)
            except ValueError as exc:
                raise rule_error("is_uuid", "auth_strategy_id must be a UUID") from exc
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _trimmed_name(value)

    @field_validator("redirect_uri")
    @classmethod
    def _redirect(cls, value: str | None) -> str | None:
        return None if value is None else check_redirect_uri(value)


class ApplicationUpdate(StrictModel):
    name: Name | None = None
    description: Annotated[str, Field(max_length=255)] | None = None
    redirect_uri: str | None = None
    reference_id: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    scopes: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is None:
            raise rule_error("invalid", "name cannot be null")
        return _trimmed_name(value)

    @field_validator("redirect_uri")
    @classmethod
    def _redirect(cls, value: str | None) -> str | None:
        return None if value is None else check_redirect_uri(value)


class CredentialCreate(StrictModel):
    display_name: Annotated[str, Field(max_length=255)] | None = None


class CredentialUpdate(StrictModel):
    display_name: Annotated[str, Field(min_length=1, max_length=255)]


class RegistrationCreate(StrictModel):
    product_version_id: uuid.UUID
    scopes: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = None

    @field_validator("product_version_id", mode="before")
    @classmethod
    def _uuid(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return uuid.UUID(value)
            except ValueError as exc:
                raise rule_error("is_uuid", "product_version_id must be a UUID") from exc
        return value


class RegistrationStatusUpdate(StrictModel):
    status: Literal["approved", "pending", "revoked", "rejected"]
