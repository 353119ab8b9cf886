"""Encryption of write-only secrets at rest: AES-256-GCM.

A ciphertext is `ks1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`. The key id is the first 16 hex digits
of SHA-256 of the key, so a replica can tell which key wrote a value. The associated data binds a value to
(table, row id, field): a ciphertext copied to another row or field fails to decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keystile.domain.errors import ConfigurationError, VaultError
from keystile.settings import Settings, decode_key

__all__ = ["KEY_FILE_NAME", "Vault", "key_id", "load_vault"]

log = logging.getLogger(__name__)

KEY_FILE_NAME = "secret.key"
_PREFIX = "ks1"


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def _aad(table: str, row_id: object, field: str) -> bytes:
    return f"{table}\x1f{row_id}\x1f{field}".encode()


class Vault:
    """Encrypts with the current key; decrypts with the current or any older key."""

    def __init__(self, current: bytes, old: Iterable[bytes] = ()) -> None:
        if len(current) != 32:
            raise ValueError("vault keys are 32 bytes")
        self.current_id = key_id(current)
        self._keys: dict[str, AESGCM] = {self.current_id: AESGCM(current)}
        for key in old:
            self._keys.setdefault(key_id(key), AESGCM(key))

    def __repr__(self) -> str:
        return f"Vault(current={self.current_id}, keys={len(self._keys)})"

    def encrypt(self, plaintext: str, *, table: str, row_id: object, field: str) -> str:
        nonce = os.urandom(12)
        sealed = self._keys[self.current_id].encrypt(nonce, plaintext.encode(), _aad(table, row_id, field))
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{_PREFIX}:{self.current_id}:{body}"

    def decrypt(self, token: str, *, table: str, row_id: object, field: str) -> str:
        try:
            prefix, kid, body = token.split(":", 2)
        except ValueError as exc:
            raise VaultError(f"{table}.{field} of {row_id} is not a vault ciphertext") from exc
        aead = self._keys.get(kid)
        if prefix != _PREFIX or aead is None:
            raise VaultError(
                f"{table}.{field} of {row_id} was encrypted with key {kid}, which this process does not have "
                "(set KEYSTILE_SECRET_KEY, or list the old key in KEYSTILE_OLD_SECRET_KEYS)"
            )
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        try:
            return aead.decrypt(raw[:12], raw[12:], _aad(table, row_id, field)).decode()
        except InvalidTag as exc:
            raise VaultError(f"{table}.{field} of {row_id} does not decrypt (tampered or moved ciphertext)") from exc

    def needs_reencryption(self, token: str) -> bool:
        return not token.startswith(f"{_PREFIX}:{self.current_id}:")


def load_vault(settings: Settings) -> Vault:
    """The vault for these settings: `KEYSTILE_SECRET_KEY`, else (development only) a generated key file.

    Raises:
        ConfigurationError: no key outside development posture, or a malformed key.
    """
    old = settings.old_secret_key_bytes()
    configured = settings.secret_key_bytes()
    if configured is not None:
        return Vault(configured, old)
    if not settings.dev_mode:
        settings.check()  # raises with the message that says what to set
        raise ConfigurationError("KEYSTILE_SECRET_KEY is required")  # pragma: no cover - check() raised
    return Vault(_dev_key(settings.data_dir), old)


def _dev_key(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        return decode_key(path.read_text().strip(), str(path))
    data_dir.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(key).decode() + "\n")
    log.warning(
        "generated a secret key at %s (mode 0600) because KEYSTILE_SECRET_KEY is unset; "
        "development only: set KEYSTILE_SECRET_KEY in production",
        path,
    )
    return key
