"""Data that goes in and out of a DCR adapter (contracts/dcr-providers.md §1.1, §1.2).

Secrets are `pydantic.SecretStr`: their `repr` and `str` show `**********`; call `.get_secret_value()` only at the
point where the value leaves the process (an HTTP header, a form field, the vault).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import SecretStr

__all__ = [
    "AppMetadata",
    "Capabilities",
    "ClientRef",
    "ClientUpdate",
    "EventType",
    "HookEvent",
    "IdpClient",
    "IssuedClient",
    "ProbeResult",
    "RotateMode",
    "RotatedSecret",
    "SecretStr",
    "StrategyInfo",
    "VerifyCheck",
    "VerifyReport",
]

RotateMode = Literal["replace", "add"]
EventType = Literal["update_application", "add_registration", "remove_registration"]
CheckStatus = Literal["passed", "failed", "warning", "skipped"]


@dataclass(frozen=True)
class StrategyInfo:
    """The parts of the application auth strategy an adapter needs."""

    auth_methods: tuple[str, ...] = ("client_credentials",)
    scopes: tuple[str, ...] = ()
    token_post_args_names: tuple[str, ...] = ()
    token_post_args_values: tuple[str, ...] = ()

    def token_post_args(self) -> dict[str, str]:
        """The extra token-request arguments as a mapping (names paired with values by position)."""
        return dict(zip(self.token_post_args_names, self.token_post_args_values, strict=False))

    @property
    def audience(self) -> str | None:
        """The value paired with `audience` in `token_post_args`, if any."""
        return self.token_post_args().get("audience")


@dataclass(frozen=True)
class AppMetadata:
    """One application as an adapter sees it (§1.1).

    `scopes` is already the developer's choice where the strategy allows it, else the strategy's.
    """

    application_id: uuid.UUID
    name: str
    description: str = ""
    redirect_uri: str | None = None
    scopes: tuple[str, ...] = ()
    developer_id: str = ""
    portal_id: str = ""
    auth_strategy_id: str = ""
    dcr_provider_id: str = ""
    organization_id: str = ""
    strategy: StrategyInfo = field(default_factory=StrategyInfo)
    created_at: datetime | None = None


@dataclass
class IssuedClient:
    """What `register` returns. `client_secret` goes to the caller once and is never stored.

    `secret_handles` (RAT, `registration_client_uri`) are stored only through the vault; `handles` are plain.
    """

    client_id: str
    client_secret: SecretStr
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    credential_id: str | None = None
    handles: dict[str, Any] = field(default_factory=dict)
    secret_handles: dict[str, SecretStr] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    needs_probe: bool = False

    def as_ref(self, application_id: uuid.UUID, created_at: datetime | None = None) -> ClientRef:
        """The `ClientRef` a service would build from the row this registration is stored in."""
        return ClientRef(
            client_id=self.client_id,
            application_id=application_id,
            created_at=created_at or self.issued_at,
            handles=dict(self.handles),
            secret_handles=dict(self.secret_handles),
            metadata=dict(self.metadata),
        )


@dataclass
class ClientRef:
    """A stored IdP client, built by services from the application row (secret handles decrypted)."""

    client_id: str
    application_id: uuid.UUID
    created_at: datetime | None = None
    handles: dict[str, Any] = field(default_factory=dict)
    secret_handles: dict[str, SecretStr] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClientUpdate:
    """Changes to persist after an operation (a new RAT, the metadata the IdP returned).

    Keys absent here leave stored values alone; `metadata` is merged over the stored one (§2 "persist what came
    back"). `client_secret` is set when the update rotated the secret (`update_rotates_secret`): it is shown once.
    """

    handles: dict[str, Any] = field(default_factory=dict)
    secret_handles: dict[str, SecretStr] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    client_secret: SecretStr | None = None
    expires_at: datetime | None = None

    def apply(self, ref: ClientRef) -> ClientRef:
        """A copy of `ref` with these updates merged in."""
        return ClientRef(
            client_id=ref.client_id,
            application_id=ref.application_id,
            created_at=ref.created_at,
            handles={**ref.handles, **self.handles},
            secret_handles={**ref.secret_handles, **self.secret_handles},
            metadata={**ref.metadata, **self.metadata},
        )


@dataclass
class RotatedSecret:
    """What `rotate_secret` returns; services commit the updates before the secret goes out."""

    client_secret: SecretStr
    credential_id: str | None = None
    expires_at: datetime | None = None
    handles: dict[str, Any] = field(default_factory=dict)
    secret_handles: dict[str, SecretStr] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    replaced_credential_ids: list[str] = field(default_factory=list)
    needs_probe: bool = False

    def apply(self, ref: ClientRef) -> ClientRef:
        """A copy of `ref` with the new handles and metadata merged in."""
        return ClientUpdate(handles=self.handles, secret_handles=self.secret_handles, metadata=self.metadata).apply(ref)


@dataclass(frozen=True)
class HookEvent:
    """An application or registration change pushed to the IdP (the HTTP bridge's vocabulary, §2.5)."""

    event_type: EventType
    app: AppMetadata
    api_product_version_id: str | None = None
    audience: str | None = None


class ProbeResult(enum.Enum):
    """Outcome of a client-credentials token request with fresh credentials."""

    OK = "ok"
    REJECTED = "rejected"  # the IdP does not (yet) accept the credentials: invalid_client / unauthorized_client
    DENIED = "denied"  # credentials accepted, the request refused: invalid_scope, access_denied, invalid_target


@dataclass(frozen=True)
class VerifyCheck:
    """One check of `verify` (management-api.md §2)."""

    name: str
    status: CheckStatus
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass
class VerifyReport:
    """The verify result. `status` is `success` exactly when `errors` is empty.

    `cleanup` is set when a trial registration was made but its clean-up delete failed: the caller queues a
    deregister of that client (it carries the client_id and its handles), noting `cleanup_landed`.
    """

    checks: list[VerifyCheck] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cleanup: ClientRef | None = None
    cleanup_landed: bool = False  # the failed clean-up DELETE may have been carried out (ProviderError.may_have_landed)

    @property
    def status(self) -> Literal["success", "failed"]:
        return "failed" if self.errors else "success"

    def passed(self, name: str, detail: str) -> None:
        self.checks.append(VerifyCheck(name, "passed", detail))

    def failed(self, name: str, detail: str) -> None:
        self.checks.append(VerifyCheck(name, "failed", detail))
        self.errors.append(detail)

    def warning(self, name: str, detail: str) -> None:
        self.checks.append(VerifyCheck(name, "warning", detail))

    def skipped(self, name: str, detail: str) -> None:
        self.checks.append(VerifyCheck(name, "skipped", detail))

    def check(self, name: str) -> VerifyCheck | None:
        """The check called `name`, if it ran."""
        return next((c for c in self.checks if c.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        """The verify response body (management-api.md §2)."""
        return {"status": self.status, "errors": list(self.errors), "checks": [c.as_dict() for c in self.checks]}


@dataclass(frozen=True)
class IdpClient:
    """One client listed at the IdP that carries keystile's tag."""

    client_id: str
    name: str
    application_id: str | None
    created_at: datetime | None


@dataclass(frozen=True)
class Capabilities:
    """What an adapter can do (§1.2), read by services; `overlap` is shown as `supports_multiple_credentials`."""

    rotate: bool = True
    overlap: bool = False
    needs_probe_on_register: bool = False
    needs_probe_on_rotate: bool = False
    update_rotates_secret: bool = False
    list_clients: bool = False
    events: frozenset[str] = frozenset({"update_application"})
    max_secrets: int = 1

    def acts_on(self, event_type: str) -> bool:
        return event_type in self.events

    def as_dict(self) -> Mapping[str, Any]:
        return {
            "rotate": self.rotate,
            "overlap": self.overlap,
            "needs_probe_on_register": self.needs_probe_on_register,
            "needs_probe_on_rotate": self.needs_probe_on_rotate,
            "update_rotates_secret": self.update_rotates_secret,
            "list_clients": self.list_clients,
            "events": sorted(self.events),
            "max_secrets": self.max_secrets,
        }
