"""OpenAPI shapes of the Portal API responses this package serves (the services return plain dicts of these
shapes; the models document them in `/v2/openapi.json` and let schemathesis check them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from keystile.api.management.schemas import Meta
from keystile.api.openapi import request_body

__all__ = [
    "DeveloperMeOut",
    "OperationsOut",
    "PortalContextOut",
    "ProductOut",
    "ProductPage",
    "ProductVersionOut",
    "ProductVersionPage",
    "SpecOut",
    "VerifyEmailOut",
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
