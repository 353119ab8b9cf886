"""Session cookies (contracts/gateway.md §5.5).

Value: `v1.` + base64url(nonce ‖ AES-256-GCM ciphertext) of the JSON `{app, strategy, cid, iat, exp, at}`,
key = HKDF-SHA256(session_secret, info "keystile-session"), a random 96-bit nonce, the strategy id as
associated data. Anything that does not decrypt is simply no session.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["MAX_COOKIE_BYTES", "SessionData", "decode_session", "derive_session_key", "encode_session"]

MAX_COOKIE_BYTES = 4096
_PREFIX = "v1."


def derive_session_key(session_secret: str) -> bytes:
    """HKDF-SHA256 of the strategy's `session_secret` (base64 of 32 bytes; other text is used as UTF-8)."""
    try:
        material = base64.b64decode(session_secret, validate=True)
    except (binascii.Error, ValueError):
        material = session_secret.encode("utf-8")
    if not material:
        material = session_secret.encode("utf-8")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"keystile-session").derive(material)


@dataclass(frozen=True)
class SessionData:
    app: str
    strategy: str
    cid: str
    iat: int
    exp: int
    at: str


def encode_session(key: bytes, data: SessionData) -> str:
    """The cookie value for `data` under `key` (associated data: the strategy id)."""
    plain = json.dumps(
        {"app": data.app, "strategy": data.strategy, "cid": data.cid, "iat": data.iat, "exp": data.exp, "at": data.at},
        separators=(",", ":"),
    ).encode()
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plain, data.strategy.encode())
    return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")


def decode_session(key: bytes, strategy_id: str, value: str) -> SessionData | None:
    """The session in `value`, or None when it is not ours, tampered, or for another strategy (expiry unchecked)."""
    if not value.startswith(_PREFIX):
        return None
    raw = value[len(_PREFIX) :]
    try:
        blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(blob) < 12 + 16:
        return None
    try:
        plain = AESGCM(key).decrypt(blob[:12], blob[12:], strategy_id.encode())
        data: Any = json.loads(plain)
        session = SessionData(
            app=str(data["app"]),
            strategy=str(data["strategy"]),
            cid=str(data["cid"]),
            iat=int(data["iat"]),
            exp=int(data["exp"]),
            at=str(data["at"]),
        )
    except (InvalidTag, ValueError, KeyError, TypeError):
        return None
    if session.strategy != strategy_id:
        return None
    return session
