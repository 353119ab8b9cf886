"""OpenAPI shapes of the Portal API responses this package serves (the services return plain dicts of these
shapes; the models document them in `/v2/openapi.json` and let schemathesis check them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, RootModel
from pydantic.json_schema import SkipJsonSchema

from keystile.api.management.schemas import Meta, TtlOut
from keystile.api.openapi import request_body

__all__ = [
    "ApplicationCreatedOut",
    "ApplicationOut",
    "ApplicationPage",
    "ApplicationUpdatedOut",
    "ClientCredentialsOut",
    "CredentialCreatedOut",
    "CredentialPage",
    "DeveloperMeOut",
    "OperationsOut",
    "PortalAuthStrategyPage",
    "PortalContextOut",
    "ProductOut",
    "ProductPage",
    "ProductVersionOut",
    "ProductVersionPage",
    "RegistrationOut",
    "RegistrationPage",
    "SpecOut",
    "VerifyEmailOut",
    "VersionApplicationPage",
    "json_body",
]


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` declaring a required JSON request body with `model`'s schema (inlined)."""
    return request_body(model)


class DeveloperMeOut(BaseModel):
    id: str
    email: str
    full_name: str
    created_at: str
    updated_at: str


class VerifyEmailOut(BaseModel):
    email: str
    token: str


class PortalContextOut(BaseModel):
    portal_id: str
    org_id: str
    name: str
    canonical_domain: str
    is_public: bool
    basic_auth_enabled: bool
    oidc_auth_enabled: bool
    rbac_enabled: bool
    featureset_id: str
    allowed_time_period: str
    dcr_provider_ids: list[str]


class LatestVersion(BaseModel):
    id: str
    name: str


class ProductOut(BaseModel):
    id: str
    name: str
    description: str | None
    document_count: int
    version_count: int
    latest_version: LatestVersion | None
    public_labels: dict[str, str]
    created_at: str
    updated_at: str


class ProductPage(BaseModel):
    data: list[ProductOut]
    meta: Meta


class RegistrationConfigOut(BaseModel):
    id: str
    name: str
    credential_type: str
    auth_methods: list[str]
    available_scopes: list[str]
    registration_enabled: bool
    registration_auto_approve: bool


class ProductVersionOut(BaseModel):
    id: str
    name: str
    deprecated: bool
    registration_configs: list[RegistrationConfigOut]
    gateway_urls: list[str]
    created_at: str
    updated_at: str


class ProductVersionPage(BaseModel):
    data: list[ProductVersionOut]
    meta: Meta


class SpecOut(BaseModel):
    api_type: str
    content: str


class OperationOut(BaseModel):
    path: str
    method: str
    operation_id: str | None
    tags: list[str]
    summary: str | None
    deprecated: bool


class OperationsOut(BaseModel):
    api_type: str
    operations: list[OperationOut]


# ---- applications (portal-api.md §4, §7) -----------------------------------------------------------------

RegistrationStatus = Literal["approved", "pending", "revoked", "rejected"]


class KeyAuthStrategyOut(BaseModel):
    """A key_auth strategy as developers see it (`services.applications.strategy_view`)."""

    id: str
    name: str
    credential_type: Literal["key_auth"]
    key_names: list[str]
    #: present only when the strategy sets a ttl (never null)
    ttl: TtlOut | SkipJsonSchema[None] = None
    supports_multiple_credentials: bool


class ClientCredentialsStrategyOut(BaseModel):
    """An openid_connect strategy as developers see it (`services.applications.strategy_view`)."""

    id: str
    name: str
    credential_type: Literal["client_credentials", "self_managed_client_credentials"]
    auth_methods: list[str]
    available_scopes: list[str]
    supports_multiple_credentials: bool
    min_allowed_credentials: int
    max_allowed_credentials: int


PortalAuthStrategyOut = Annotated[
    KeyAuthStrategyOut | ClientCredentialsStrategyOut, Field(discriminator="credential_type")
]


class PortalAuthStrategyPage(BaseModel):
    data: list[PortalAuthStrategyOut]
    meta: Meta


class ClientCredentialsOut(BaseModel):
    """A DCR application's client id and secret, shown once (create, a rotating update, refresh-token)."""

    client_id: str
    client_secret: str


class ApplicationOut(BaseModel):
    """The developer's application (`services.applications.view`); `deleting` ones are never shown to them."""

    id: str
    name: str
    reference_id: str | None
    description: str | None
    redirect_uri: str | None
    auth_strategy: PortalAuthStrategyOut
    scopes: list[str]
    status: Literal["provisioning", "active"]
    needs_attention: bool
    created_at: str
    updated_at: str


class ApplicationCreatedOut(ApplicationOut):
    #: DCR applications only: the client secret, in this answer only
    credentials: ClientCredentialsOut | SkipJsonSchema[None] = None


class ApplicationUpdatedOut(ApplicationOut):
    #: only after a `redirect_uri` change on a provider that rotated the secret on update
    credentials: ClientCredentialsOut | SkipJsonSchema[None] = None


class ApplicationPage(BaseModel):
    data: list[ApplicationOut]
    meta: Meta


class VersionApplicationOut(BaseModel):
    """One of the developer's applications as seen from a product version (`services.portal_catalog`)."""

    id: str
    name: str
    #: null for the `unregistered=true` list
    registration_id: str | None
    registration_status: RegistrationStatus | None
    auth_strategy: PortalAuthStrategyOut
    created_at: str
    updated_at: str


class VersionApplicationPage(BaseModel):
    data: list[VersionApplicationOut]
    meta: Meta


# ---- credentials (portal-api.md §5) ------------------------------------------------------------------------


class ApiKeyOut(BaseModel):
    """An API key of a key_auth application (`services.credentials._key_view`)."""

    type: Literal["api_key"]
    id: str
    display_name: str | None
    status: Literal["active", "expired", "revoked"]
    expires_at: str | None
    created_at: str


class ClientSecretOut(BaseModel):
    """A client secret record of a DCR application (`services.credentials._secret_view`); never the secret."""

    type: Literal["client_secret"]
    id: str
    display_name: str | None
    client_id: str | None
    created_at: str
    expires_at: str | None


class ApiKeyCreatedOut(ApiKeyOut):
    #: the key itself, in this answer only
    credential: str


class ClientSecretCreatedOut(ClientSecretOut):
    #: the secret itself, in this answer only
    client_secret: str


CredentialOut = Annotated[ApiKeyOut | ClientSecretOut, Field(discriminator="type")]


class CredentialCreatedOut(
    RootModel[Annotated[ApiKeyCreatedOut | ClientSecretCreatedOut, Field(discriminator="type")]]
):
    """A new API key or client secret, with the secret itself (shown once)."""


class CredentialPage(BaseModel):
    data: list[CredentialOut]
    meta: Meta


# ---- registrations (portal-api.md §6) ----------------------------------------------------------------------


class RegistrationOut(BaseModel):
    """A registration of the developer's application (`services.registrations.view`)."""

    id: str
    status: RegistrationStatus
    product_id: str
    product_name: str
    product_version_id: str
    product_version_name: str
    application_id: str
    created_at: str
    updated_at: str


class RegistrationPage(BaseModel):
    data: list[RegistrationOut]
    meta: Meta
