"""Settings from `KEYSTILE_*` environment variables (and an optional `.env`).

keystile is in development posture exactly when `KEYSTILE_PUBLIC_URL` is a plain-http loopback URL (the
default). Then cookies may lack `Secure` and a missing `KEYSTILE_SECRET_KEY` is generated into the data
folder; anywhere else both are refused with a message that says what to set.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from keystile.domain.errors import ConfigurationError

__all__ = ["Settings", "is_loopback_host"]

_PLACEHOLDERS = {"changeme", "change-me", "secret", "placeholder", "xxx", "todo"}


def is_loopback_host(host: str | None) -> bool:
    """True for `localhost`, `*.localhost` and loopback IP literals."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """All of keystile's configuration. Build one per process (or per test) and pass it down."""

    model_config = SettingsConfigDict(env_prefix="KEYSTILE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("./keystile-data"), description="folder for the SQLite file, keys and state")
    database_url: str | None = Field(default=None, description="sqlite+aiosqlite:///... or postgresql+psycopg://...")
    secret_key: SecretStr | None = Field(default=None, description="32 bytes, base64: encrypts write-only secrets")
    old_secret_keys: SecretStr | None = Field(default=None, description="comma-separated older keys, read only")
    public_url: str = Field(default="http://127.0.0.1:8080", description="the portal's public base URL")
    gateway_public_url: str | None = Field(default=None, description="base URL developers call the gateway at")
    log_level: str = Field(default="INFO")
    log_format: Literal["json", "text"] = Field(default="json")
    audit_retention_days: int = Field(default=365, ge=1)
    smtp_url: str | None = None
    mail_outbox: Path | None = None
    redis_url: str | None = None
    idp_connect_timeout: float = 5.0
    idp_read_timeout: float = 15.0
    idp_write_timeout: float = 10.0
    idp_pool_timeout: float = 5.0

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("KEYSTILE_PUBLIC_URL must be an absolute http(s) URL, e.g. https://portal.example.com")
        return value.rstrip("/")

    @property
    def dev_mode(self) -> bool:
        """Development posture: a plain-http loopback public URL."""
        parts = urlsplit(self.public_url)
        return parts.scheme == "http" and is_loopback_host(parts.hostname)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'keystile.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def secret_key_bytes(self) -> bytes | None:
        """The configured key, decoded; None when unset. Raises ConfigurationError when malformed."""
        if self.secret_key is None:
            return None
        return decode_key(self.secret_key.get_secret_value(), "KEYSTILE_SECRET_KEY")

    def old_secret_key_bytes(self) -> list[bytes]:
        if self.old_secret_keys is None:
            return []
        raw = [part.strip() for part in self.old_secret_keys.get_secret_value().split(",")]
        return [decode_key(part, "KEYSTILE_OLD_SECRET_KEYS") for part in raw if part]

    def check(self) -> None:
        """Refuse insecure settings outside development posture, with a message naming the fix."""
        url = self.resolved_database_url
        if not (url.startswith(("sqlite+aiosqlite://", "postgresql+psycopg://"))):
            raise ConfigurationError(
                "KEYSTILE_DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+psycopg:// "
                f"(got a URL with scheme {url.split(':', 1)[0]!r})"
            )
        self.secret_key_bytes()
        self.old_secret_key_bytes()
        if self.dev_mode:
            return
        if self.secret_key is None:
            raise ConfigurationError(
                f"KEYSTILE_SECRET_KEY is required when KEYSTILE_PUBLIC_URL is not a plain-http loopback URL "
                f"({self.public_url}); generate one with: python3 -c "
                '"import os,base64;print(base64.b64encode(os.urandom(32)).decode())"'
            )
        if urlsplit(self.public_url).scheme != "https":
            raise ConfigurationError(
                "KEYSTILE_PUBLIC_URL must use https outside local development (plain http is allowed only "
                "for loopback hosts); put TLS in front of keystile and set the https URL"
            )


def decode_key(value: str, name: str) -> bytes:
    """Decode a base64 32-byte key, refusing placeholders with a clear message."""
    if value.strip().lower() in _PLACEHOLDERS:
        raise ConfigurationError(f"{name} is a placeholder ({value!r}); set 32 random bytes, base64-encoded")
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(f"{name} is not valid base64; set 32 random bytes, base64-encoded") from exc
    if len(key) != 32:
        raise ConfigurationError(f"{name} must decode to exactly 32 bytes (got {len(key)})")
    return key
