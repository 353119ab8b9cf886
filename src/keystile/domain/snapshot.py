"""The data-plane configuration snapshot (contracts/gateway.md §3).

The control plane (`services/dataplane.py`) writes it; the gateway reads it from the config feed (§2) or a
file (§8). Unknown keys are ignored within the same `format_version` major; a missing required key rejects
the snapshot. No I/O here: `parse_snapshot` takes bytes already read.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

__all__ = [
    "SUPPORTED_FORMAT_VERSION",
    "Application",
    "Credential",
    "KeyAuthStrategy",
    "OidcSettings",
    "OpenIdConnectStrategy",
    "Route",
    "Snapshot",
    "SnapshotError",
    "Strategy",
    "parse_snapshot",
]

SUPPORTED_FORMAT_VERSION = 1

AUTH_METHODS = frozenset({"client_credentials", "bearer", "session", "introspection"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Route(_Model):
    """One product version with a gateway service."""

    product_version_id: str
    product_id: str
    paths: list[str] = Field(min_length=1)
    methods: list[str] | None = None
    strip_path: bool = True
    upstream_url: str
    connect_timeout_ms: int = Field(default=5000, ge=1)
    read_timeout_ms: int = Field(default=60000, ge=1)
    auth_strategy_ids: list[str]
    allow_anonymous: bool = False

    @field_validator("paths")
    @classmethod
    def _paths_absolute(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"route path {path!r} must start with '/'")
        return value

    @field_validator("methods")
    @classmethod
    def _methods_upper(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [m.upper() for m in value]

    @field_validator("upstream_url")
    @classmethod
    def _upstream_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("upstream_url must be an http:// or https:// URL")
        return value


class OidcSettings(_Model):
    """The honoured additional OIDC keys, defaults applied by the control plane."""

    cache_tokens: bool = True
    token_post_args: dict[str, str] = Field(default_factory=dict)
    audience: list[str] = Field(default_factory=list)
    scopes_required: list[str] = Field(default_factory=list)
    session_cookie_name: str = "session"
    session_absolute_timeout: int = Field(default=3600, ge=1)
    session_secret: str | None = None
    introspection_client_id: str | None = None
    introspection_client_secret: str | None = None


class OpenIdConnectStrategy(_Model):
    """An `openid_connect` auth strategy."""

    id: str
    strategy_type: Literal["openid_connect"]
    issuer: str
    discovery_url: str
    credential_claim: list[str] = Field(default_factory=lambda: ["client_id"])
    scopes: list[str] = Field(default_factory=list)
    auth_methods: list[str]
    settings: OidcSettings = Field(default_factory=OidcSettings)

    @field_validator("auth_methods")
    @classmethod
    def _known_methods(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if m not in AUTH_METHODS]
        if unknown:
            raise ValueError(f"unknown auth_methods {unknown}")
        return value


class KeyAuthStrategy(_Model):
    """A `key_auth` auth strategy."""

    id: str
    strategy_type: Literal["key_auth"]
    key_names: list[str] = Field(min_length=1)


Strategy = Annotated[OpenIdConnectStrategy | KeyAuthStrategy, Field(discriminator="strategy_type")]


_LEAN = ConfigDict(extra="ignore")


# Applications and credentials are pydantic dataclasses with __slots__: a snapshot may list 100,000 of them and
# a BaseModel instance costs several times more memory.
@pydantic_dataclass(config=_LEAN, slots=True, frozen=True)
class Credential:
    """`client_id` (the IdP client id) or `api_key_sha256` (hex SHA-256 of a key)."""

    type: Literal["client_id", "api_key_sha256"]
    id: str
    value: str
    expires_at: datetime | None = None


@pydantic_dataclass(config=_LEAN, slots=True, frozen=True)
class Application:
    """An `active` application on a listed strategy."""

    id: str
    name: str
    developer_id: str
    portal_id: str
    auth_strategy_id: str
    credentials_not_before: datetime | None = None
    credentials: list[Credential] = dataclasses.field(default_factory=list)


class Snapshot(_Model):
    """The whole data-plane configuration at one `version`."""

    format_version: int
    version: int
    generated_at: datetime
    shared_cache_key: str | None = None
    routes: list[Route]
    strategies: list[Strategy]
    applications: list[Application]
    registrations: dict[str, list[str]]

    @field_validator("format_version")
    @classmethod
    def _supported(cls, value: int) -> int:
        if value != SUPPORTED_FORMAT_VERSION:
            raise ValueError(f"unsupported format_version {value} (this gateway reads {SUPPORTED_FORMAT_VERSION})")
        return value


class SnapshotError(ValueError):
    """A snapshot that cannot be used; `errors` lists every problem found (`location: message`)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("invalid snapshot: " + "; ".join(errors))
        self.errors = errors


def _decode(raw: bytes, fmt: str) -> Any:
    if fmt == "json":
        return json.loads(raw)
    if fmt == "yaml":
        return yaml.safe_load(raw)
    raise ValueError(f"unknown snapshot format {fmt!r}")


def parse_snapshot(raw: bytes, fmt: Literal["json", "yaml", "auto"] = "json") -> Snapshot:
    """Parse and validate a snapshot.

    Args:
        raw: the document.
        fmt: `json`, `yaml`, or `auto` (JSON when it parses as JSON, else YAML).

    Raises:
        SnapshotError: the document does not parse, or lists every validation error.
    """
    if fmt in ("json", "auto") and raw.lstrip()[:1] == b"{":
        # straight from bytes to models: no intermediate dicts (a 100,000-application snapshot is ~35 MB of JSON)
        try:
            return Snapshot.model_validate_json(raw)
        except ValidationError as exc:
            if not any(err["type"] == "json_invalid" for err in exc.errors()):
                raise SnapshotError(_errors(exc)) from exc
            if fmt == "json":
                raise SnapshotError([f"not valid JSON: {exc.errors()[0]['msg']}"]) from exc
    try:
        if fmt == "auto":
            try:
                data = _decode(raw, "json")
            except ValueError:
                data = _decode(raw, "yaml")
        else:
            data = _decode(raw, fmt)
    except (ValueError, yaml.YAMLError) as exc:
        raise SnapshotError([f"not valid {fmt if fmt != 'auto' else 'JSON or YAML'}: {exc}"]) from exc
    if not isinstance(data, dict):
        raise SnapshotError(["the document must be an object"])
    try:
        return Snapshot.model_validate(data)
    except ValidationError as exc:
        raise SnapshotError(_errors(exc)) from exc


def _errors(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()]
