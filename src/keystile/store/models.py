"""Tables (SQLAlchemy 2 declarative). ORM rows are separate from API schemas.

Write-only secrets live in each row's `secrets` JSON column as vault ciphertexts (`store/vault.py`),
bound to (table, row id, field); nothing else in a row is secret.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from keystile.store.types import UTCDateTime, utcnow

__all__ = [
    "AdminToken",
    "ApiProduct",
    "Application",
    "AuditEvent",
    "AuthStrategy",
    "Base",
    "Credential",
    "DataPlaneNode",
    "DataPlaneToken",
    "DcrProvider",
    "Developer",
    "DeveloperToken",
    "IdempotencyKey",
    "IdpOperation",
    "Installation",
    "Portal",
    "PortalProductVersion",
    "ProductPortal",
    "ProductVersion",
    "Registration",
    "Specification",
    "ThrottleEvent",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Installation(Base):
    """One row (id 1): installation-wide values shared by every replica."""

    __tablename__ = "installation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    config_version: Mapped[int] = mapped_column(BigInteger, default=1)
    key_check: Mapped[str | None] = mapped_column(Text)
    secrets: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AdminToken(Base):
    """A personal access token (`kpat_…`), stored as SHA-256 hex."""

    __tablename__ = "admin_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class DcrProvider(TimestampMixin, Base):
    __tablename__ = "dcr_providers"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    display_name: Mapped[str] = mapped_column(String(256))
    provider_type: Mapped[str] = mapped_column(String(32))
    issuer: Mapped[str] = mapped_column(String(256))
    discovery_url: Mapped[str | None] = mapped_column(String(512))
    dcr_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secrets: Mapped[dict[str, Any]] = mapped_column(default=dict)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AuthStrategy(TimestampMixin, Base):
    __tablename__ = "auth_strategies"
    __table_args__ = (Index("ix_auth_strategies_created_at_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(256))
    display_name: Mapped[str] = mapped_column(String(256))
    strategy_type: Mapped[str] = mapped_column(String(32))
    configs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secrets: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dcr_provider_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("dcr_providers.id", ondelete="RESTRICT"), index=True
    )
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    principals: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_created_at_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_type: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor_name: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(128), index=True)
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer)
    trace_id: Mapped[str | None] = mapped_column(String(32))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)


# ---- portal: catalog, developers, applications, registrations (contracts/management-api.md §4–5) --------


class Portal(TimestampMixin, Base):
    __tablename__ = "portals"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(512))
    is_public: Mapped[bool] = mapped_column(default=False)
    auto_approve_developers: Mapped[bool] = mapped_column(default=False)
    auto_approve_applications: Mapped[bool] = mapped_column(default=False)
    default_application_auth_strategy_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("auth_strategies.id", ondelete="RESTRICT"), index=True
    )
    rbac_enabled: Mapped[bool] = mapped_column(default=False)
    custom_domain: Mapped[str | None] = mapped_column(String(255), unique=True)
    custom_client_domain: Mapped[str | None] = mapped_column(String(255))
    revoke_on_developer_revoke: Mapped[bool] = mapped_column(default=True)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ApiProduct(TimestampMixin, Base):
    __tablename__ = "api_products"
    __table_args__ = (Index("ix_api_products_created_at_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    public_labels: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ProductPortal(Base):
    """A product listed in a portal (`portal_ids`)."""

    __tablename__ = "product_portals"

    product_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("api_products.id", ondelete="CASCADE"), primary_key=True
    )
    portal_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("portals.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ProductVersion(TimestampMixin, Base):
    __tablename__ = "product_versions"
    __table_args__ = (UniqueConstraint("product_id", "name", name="uq_product_versions_product_id_name"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    product_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("api_products.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    gateway_service: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Specification(TimestampMixin, Base):
    __tablename__ = "specifications"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    product_version_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("product_versions.id", ondelete="CASCADE"), unique=True
    )
    name: Mapped[str] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(Text)


class PortalProductVersion(TimestampMixin, Base):
    __tablename__ = "portal_product_versions"
    __table_args__ = (
        UniqueConstraint("portal_id", "product_version_id", name="uq_portal_product_versions_portal_id_version"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    portal_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("portals.id", ondelete="CASCADE"), index=True)
    product_version_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("product_versions.id", ondelete="CASCADE"), index=True
    )
    publish_status: Mapped[str] = mapped_column(String(16), default="unpublished")
    application_registration_enabled: Mapped[bool] = mapped_column(default=False)
    auto_approve_registration: Mapped[bool] = mapped_column(default=False)
    deprecated: Mapped[bool] = mapped_column(default=False)
    auth_strategy_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("auth_strategies.id", ondelete="RESTRICT"), index=True
    )


class Developer(TimestampMixin, Base):
    __tablename__ = "developers"
    __table_args__ = (UniqueConstraint("portal_id", "email", name="uq_developers_portal_id_email"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    portal_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("portals.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default="unverified")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    email_verified_at: Mapped[datetime | None] = mapped_column()


class DeveloperToken(Base):
    """Opaque developer tokens (session access/refresh, email verification, password reset) as SHA-256."""

    __tablename__ = "developer_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    developer_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("developers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
    # a rotated refresh token keeps its successor session (vault ciphertext, field `successor`) for the reuse grace
    # (services/developers.py): requests that present it together, on any replica, get the same new session
    secrets: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ThrottleEvent(Base):
    """One counted attempt (failed login, sign-up, forgot-password) per key, for windowed limits."""

    __tablename__ = "throttle_events"
    __table_args__ = (Index("ix_throttle_events_key_created_at", "key", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    key: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Application(TimestampMixin, Base):
    __tablename__ = "applications"
    __table_args__ = (Index("ix_applications_portal_id_created_at", "portal_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    portal_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("portals.id", ondelete="RESTRICT"))
    developer_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("developers.id", ondelete="RESTRICT"), index=True)
    auth_strategy_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("auth_strategies.id", ondelete="RESTRICT"), index=True
    )
    dcr_provider_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("dcr_providers.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    redirect_uri: Mapped[str | None] = mapped_column(String(2048))
    reference_id: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(16), default="provisioning")
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    handles: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secrets: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idp_metadata: Mapped[dict[str, Any]] = mapped_column(default=dict)
    credentials_not_before: Mapped[datetime | None] = mapped_column()
    needs_attention: Mapped[bool] = mapped_column(default=False)


class Credential(Base):
    """An API key (key_auth, stored as SHA-256) or a client-secret record (DCR; the secret itself never)."""

    __tablename__ = "credentials"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    application_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str | None] = mapped_column(String(255))
    key_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    idp_credential_id: Mapped[str | None] = mapped_column(String(255))
    client_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="active")
    expires_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class Registration(TimestampMixin, Base):
    __tablename__ = "registrations"
    __table_args__ = (
        UniqueConstraint("application_id", "product_version_id", name="uq_registrations_application_id_version"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    application_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    product_version_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("product_versions.id", ondelete="CASCADE"), index=True
    )
    portal_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("portals.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    scopes: Mapped[list[Any] | None] = mapped_column(JSON)


class IdpOperation(Base):
    """Outbox: IdP work retried after the local commit (deletes, revocations, events, sweeps)."""

    __tablename__ = "idp_operations"
    __table_args__ = (Index("ix_idp_operations_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    dcr_provider_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    application_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    client_id: Mapped[str | None] = mapped_column(String(255))
    operation: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secrets: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_failed_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "method", "path", "key", name="uq_idempotency_keys_scope"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    scope: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(512))
    key: Mapped[str] = mapped_column(String(255))
    request_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="in_progress")
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    response_location: Mapped[str | None] = mapped_column(String(512))
    secret_resource: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class DataPlaneToken(Base):
    __tablename__ = "dataplane_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class DataPlaneNode(Base):
    __tablename__ = "dataplane_nodes"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    hostname: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[str | None] = mapped_column(String(64))
    config_version: Mapped[int | None] = mapped_column(BigInteger)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    token_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
