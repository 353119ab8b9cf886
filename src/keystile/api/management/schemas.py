"""Response schemas of the Management API, for the OpenAPI document (handlers return plain dicts shaped
exactly like these; request bodies are documented from the domain models that validate them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

__all__ = [
    "AdminApplicationOut",
    "AdminApplicationPage",
    "AdminRegistrationOut",
    "AdminRegistrationPage",
    "AuditLogOut",
    "AuthStrategyOut",
    "AuthStrategyPage",
    "DcrProviderOut",
    "DcrProviderPage",
    "IdpOperationOut",
    "IdpOperationPage",
    "TtlOut",
    "VerifyOut",
]


class PageMeta(BaseModel):
    number: int
    size: int
    total: int


class Meta(BaseModel):
    page: PageMeta


class DcrProviderOut(BaseModel):
    id: str
    name: str
    display_name: str
    provider_type: str
    issuer: str
    active: bool
    dcr_config: dict[str, Any]
    labels: dict[str, str]
    created_at: str
    updated_at: str


class DcrProviderPage(BaseModel):
    data: list[DcrProviderOut]
    meta: Meta


class ProviderSummary(BaseModel):
    id: str
    name: str
    display_name: str
    provider_type: str


class AuthStrategyOut(BaseModel):
    id: str
    name: str
    display_name: str
    strategy_type: str
    active: bool
    configs: dict[str, dict[str, Any]]
    dcr_provider: ProviderSummary | None
    labels: dict[str, str]
    supports_multiple_credentials: bool
    principals: dict[str, bool]
    created_at: str
    updated_at: str


class AuthStrategyPage(BaseModel):
    data: list[AuthStrategyOut]
    meta: Meta


class VerifyCheckOut(BaseModel):
    name: str
    status: str
    detail: str


class VerifyOut(BaseModel):
    status: str
    errors: list[str]
    warnings: list[str] | None = None
    checks: list[VerifyCheckOut]


class AuditActor(BaseModel):
    type: str
    id: str | None
    name: str | None


class AuditResource(BaseModel):
    type: str
    id: str | None


class AuditLogOut(BaseModel):
    id: str
    created_at: str
    actor: AuditActor
    action: str
    resource: AuditResource
    outcome: str
    status_code: int | None
    trace_id: str | None
    client_ip: str | None
    changes: dict[str, Any]


class AuditLogPage(BaseModel):
    data: list[AuditLogOut]
    meta: Meta


class NamedRef(BaseModel):
    id: str
    name: str


class AdminRegistrationOut(BaseModel):
    """A registration on the Management API (`services.registrations.admin_view`)."""

    id: str
    status: Literal["approved", "pending", "revoked", "rejected"]
    product: NamedRef
    product_version: NamedRef
    application: NamedRef
    developer: NamedRef
    granted_scopes: list[str] | None
    created_at: str
    updated_at: str


class AdminRegistrationPage(BaseModel):
    data: list[AdminRegistrationOut]
    meta: Meta


class IdpOperationOut(BaseModel):
    """An outbox entry (`services.outbox.view`)."""

    id: str
    dcr_provider_id: str | None
    application_id: str | None
    client_id: str | None
    operation: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: str
    created_at: str


class IdpOperationPage(BaseModel):
    data: list[IdpOperationOut]
    meta: Meta


class TtlOut(BaseModel):
    """A key_auth strategy's `ttl`, as stored from its validated config (`domain.strategies.Ttl`)."""

    value: int
    unit: Literal["days", "weeks", "years"]


class IdRef(BaseModel):
    id: str


class ApplicationDeveloperRef(BaseModel):
    id: str
    name: str
    email: str


class AdminKeyAuthStrategyRef(BaseModel):
    """A key_auth application's strategy on the Management API (`services.applications._admin_strategy`)."""

    id: str
    name: str
    credential_type: Literal["key_auth"]
    key_names: list[str]
    #: present only when the strategy sets a ttl (never null)
    ttl: TtlOut | SkipJsonSchema[None] = None


class AdminClientStrategyRef(BaseModel):
    """An openid_connect application's strategy on the Management API (`services.applications._admin_strategy`)."""

    id: str
    name: str
    credential_type: Literal["client_credentials", "self_managed_client_credentials"]
    auth_methods: list[str]
    available_scopes: list[str]


class AdminApplicationOut(BaseModel):
    """An application on the Management API (`services.applications.admin_view`, management-api.md §5)."""

    id: str
    name: str
    description: str | None
    labels: dict[str, str]
    reference_id: str | None
    registration_count: int
    dcr_provider: IdRef | None
    portal: IdRef
    developer: ApplicationDeveloperRef
    auth_strategy: Annotated[AdminKeyAuthStrategyRef | AdminClientStrategyRef, Field(discriminator="credential_type")]
    granted_scopes: list[str] | None
    status: Literal["provisioning", "active", "deleting"]
    needs_attention: bool
    created_at: str
    updated_at: str


class AdminApplicationPage(BaseModel):
    data: list[AdminApplicationOut]
    meta: Meta
