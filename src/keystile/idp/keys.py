"""Signing keys of the built-in IdP: RS256 key pairs kept in `<data dir>/keys.json` (mode 0600).

The file holds every key still needed: the active one (no `retired_at`) and retired ones, which stay
published in the JWKS until the tokens they signed have expired (`retired_at + access_token_ttl + leeway`).
`rotate_keys` (the `keystile idp rotate-keys` command) writes a new file atomically under a lock; a running
server notices the new file (its inode or mtime changes) and signs with the new key from the next token on.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.jwk import KeySet, RSAKey

from keystile.domain.errors import ConfigurationError

__all__ = [
    "KEYS_FILE",
    "KEY_SIZE",
    "LEEWAY_SECONDS",
    "KeyRing",
    "SigningKey",
    "ensure_private_dir",
    "load_keys",
    "rotate_keys",
    "write_private_json",
]

KEYS_FILE = "keys.json"
_LOCK_FILE = "keys.lock"
KEY_SIZE = 2048
#: Clock leeway verifiers apply; a retired key stays published this much longer.
LEEWAY_SECONDS = 60


@dataclass(frozen=True)
class SigningKey:
    """One RS256 key pair with its life: `retired_at` is `None` for the active key."""

    kid: str
    created_at: int
    retired_at: int | None
    private_jwk: dict[str, Any]

    def as_record(self) -> dict[str, Any]:
        return {"kid": self.kid, "created_at": self.created_at, "retired_at": self.retired_at, "jwk": self.private_jwk}

    def public_jwk(self) -> dict[str, Any]:
        """The public half as published in the JWKS (RFC 7517 §4), with `kid`, `use` and `alg`."""
        key = RSAKey.import_key(self.private_jwk)
        return {**key.as_dict(private=False), "kid": self.kid, "use": "sig", "alg": "RS256"}

    def published(self, now: float, token_ttl: int) -> bool:
        """Whether verifiers still need this key: active, or retired less than a token lifetime ago."""
        return self.retired_at is None or now < self.retired_at + token_ttl + LEEWAY_SECONDS


def ensure_private_dir(path: Path) -> None:
    """Create `path` (mode 0700) when missing."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def write_private_json(path: Path, data: Any) -> None:
    """Write JSON atomically to `path` with mode 0600 (a temporary file created 0600, then renamed)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _new_key(now: int) -> SigningKey:
    kid = secrets.token_urlsafe(12)
    key = RSAKey.generate_key(KEY_SIZE, parameters={"kid": kid}, private=True)
    return SigningKey(kid=kid, created_at=now, retired_at=None, private_jwk=key.as_dict(private=True))


def load_keys(data_dir: Path) -> list[SigningKey]:
    """The keys in `<data_dir>/keys.json`, or `[]` when the file does not exist.

    Raises:
        ConfigurationError: the file is unreadable or not a key file.
    """
    path = data_dir / KEYS_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"idp key file {path} cannot be read: {exc.__class__.__name__}") from exc
    try:
        return [
            SigningKey(
                kid=str(item["kid"]),
                created_at=int(item["created_at"]),
                retired_at=None if item["retired_at"] is None else int(item["retired_at"]),
                private_jwk=dict(item["jwk"]),
            )
            for item in raw["keys"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"idp key file {path} is not a key file") from exc


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    ensure_private_dir(data_dir)
    fd = os.open(data_dir / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _save(data_dir: Path, keys: list[SigningKey]) -> None:
    write_private_json(data_dir / KEYS_FILE, {"keys": [k.as_record() for k in keys]})


def ensure_keys(data_dir: Path) -> list[SigningKey]:
    """The keys of `data_dir`, creating the first key pair when there is none."""
    with _locked(data_dir):
        keys = load_keys(data_dir)
        if not any(k.retired_at is None for k in keys):
            keys = [*keys, _new_key(int(time.time()))]
            _save(data_dir, keys)
        return keys


def rotate_keys(data_dir: Path, token_ttl: int, now: float | None = None) -> SigningKey:
    """Make a new active key; the previous active key is retired (still published for `token_ttl` + leeway).

    Keys retired longer ago than that are dropped from the file.

    Returns:
        The new active key.
    """
    moment = int(time.time() if now is None else now)
    with _locked(data_dir):
        kept = [
            k if k.retired_at is not None else SigningKey(k.kid, k.created_at, moment, k.private_jwk)
            for k in load_keys(data_dir)
        ]
        kept = [k for k in kept if k.published(moment, token_ttl)]
        new = _new_key(moment)
        _save(data_dir, [*kept, new])
        return new


class KeyRing:
    """The keys of a data dir as a running server sees them, re-read when the file changes on disk."""

    def __init__(self, data_dir: Path, token_ttl: int) -> None:
        self._data_dir = data_dir
        self._token_ttl = token_ttl
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keys: list[SigningKey] = []
        ensure_keys(data_dir)
        self._refresh()

    def _refresh(self) -> list[SigningKey]:
        path = self._data_dir / KEYS_FILE
        with self._lock:
            try:
                st = path.stat()
            except FileNotFoundError:
                raise ConfigurationError(f"idp key file {path} disappeared") from None
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                keys = load_keys(self._data_dir)
                if not any(k.retired_at is None for k in keys):
                    raise ConfigurationError(f"idp key file {path} has no active key")
                self._keys, self._stamp = keys, stamp
            return self._keys

    def active(self) -> SigningKey:
        """The key new tokens are signed with."""
        return next(k for k in self._refresh() if k.retired_at is None)

    def signing_key_set(self) -> KeySet:
        """A key set holding only the active private key (joserfc then writes its `kid` in the JWS header)."""
        key = self.active()
        return KeySet([RSAKey.import_key(key.private_jwk, parameters={"kid": key.kid, "alg": "RS256", "use": "sig"})])

    def published(self, now: float | None = None) -> list[SigningKey]:
        """The keys verifiers need now: the active key and those retired within a token lifetime."""
        moment = time.time() if now is None else now
        return [k for k in self._refresh() if k.published(moment, self._token_ttl)]

    def jwks(self, now: float | None = None) -> dict[str, Any]:
        """The public JWK Set document (RFC 7517 §5)."""
        return {"keys": [k.public_jwk() for k in self.published(now)]}

    def verification_key_set(self) -> KeySet:
        """The published public keys, for checking tokens this server issued."""
        return KeySet.import_key_set(self.jwks())  # type: ignore[arg-type]  # a JWKS document built above
