"""The built-in IdP's own small store: one SQLite file (`<data dir>/idp.sqlite3`) through stdlib `sqlite3`.

Secrets are never stored: client secrets, registration access tokens and static initial access tokens are
kept as SHA-256 hex digests (they are random, high-entropy values, so a fast hash is enough) and compared in
constant time. Access tokens are not stored either, only their `jti` and claims, for RFC 7662
introspection and for the single use of initial access tokens minted with scope `dcr`.

Each call opens its own connection (the ASGI app calls in from worker threads); writes run in
`BEGIN IMMEDIATE` transactions so concurrent requests serialise on the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DB_FILE", "ClientRow", "IdpStore", "TokenRow", "secret_hash", "secret_matches"]

DB_FILE = "idp.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    rat_hash TEXT,
    metadata TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    rotates_secret INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS initial_access_tokens (
    token_hash TEXT PRIMARY KEY,
    rotates_secret INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    jti TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    claims TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    consumed_at INTEGER
);
CREATE INDEX IF NOT EXISTS tokens_client_id ON tokens (client_id);
CREATE INDEX IF NOT EXISTS tokens_expires_at ON tokens (expires_at);
"""


def secret_hash(value: str) -> str:
    """The stored form of a secret: SHA-256, hex."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def secret_matches(value: str, stored_hash: str | None) -> bool:
    """Constant-time check of a presented secret against its stored hash."""
    return stored_hash is not None and hmac.compare_digest(secret_hash(value), stored_hash)


@dataclass(frozen=True)
class ClientRow:
    """A registered client as stored (no secret, only its hash)."""

    client_id: str
    secret_hash: str
    rat_hash: str | None
    metadata: dict[str, Any]
    issued_at: int
    is_admin: bool
    #: a new client secret on every RFC 7592 PUT (inherited from the initial access token used to register)
    rotates_secret: bool = True


@dataclass(frozen=True)
class TokenRow:
    """An issued access token as recorded: its claims and whether it may still be used."""

    jti: str
    client_id: str
    claims: dict[str, Any]
    expires_at: int
    revoked: bool
    consumed_at: int | None


class IdpStore:
    """Clients, static initial access tokens and issued-token records in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        with contextlib.suppress(FileNotFoundError):
            path.chmod(0o600)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self._path, timeout=10.0, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- clients ---------------------------------------------------------------------------------------------

    @staticmethod
    def _client(row: sqlite3.Row | None) -> ClientRow | None:
        if row is None:
            return None
        return ClientRow(
            client_id=row["client_id"],
            secret_hash=row["secret_hash"],
            rat_hash=row["rat_hash"],
            metadata=json.loads(row["metadata"]),
            issued_at=row["issued_at"],
            is_admin=bool(row["is_admin"]),
            rotates_secret=bool(row["rotates_secret"]),
        )

    def get_client(self, client_id: str) -> ClientRow | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM clients WHERE client_id = ?", (client_id,)).fetchone()
        return self._client(row)

    def add_client(
        self,
        client_id: str,
        client_secret: str,
        metadata: dict[str, Any],
        issued_at: int,
        registration_access_token: str | None,
        rotates_secret: bool = True,
    ) -> ClientRow:
        row = ClientRow(
            client_id=client_id,
            secret_hash=secret_hash(client_secret),
            rat_hash=None if registration_access_token is None else secret_hash(registration_access_token),
            metadata=metadata,
            issued_at=issued_at,
            is_admin=False,
            rotates_secret=rotates_secret,
        )
        with self._write() as conn:
            conn.execute(
                "INSERT INTO clients (client_id, secret_hash, rat_hash, metadata, issued_at, is_admin, rotates_secret)"
                " VALUES (?, ?, ?, ?, ?, 0, ?)",
                (row.client_id, row.secret_hash, row.rat_hash, json.dumps(metadata), issued_at, int(rotates_secret)),
            )
        return row

    def put_admin_client(self, client_id: str, client_secret: str, metadata: dict[str, Any]) -> None:
        """Create or replace the admin client (no registration access token: it is not managed by RFC 7592)."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO clients (client_id, secret_hash, rat_hash, metadata, issued_at, is_admin)"
                " VALUES (?, ?, NULL, ?, ?, 1) ON CONFLICT (client_id) DO UPDATE SET"
                " secret_hash = excluded.secret_hash, rat_hash = NULL, metadata = excluded.metadata, is_admin = 1",
                (client_id, secret_hash(client_secret), json.dumps(metadata), int(time.time())),
            )

    def update_client(
        self, client_id: str, metadata: dict[str, Any], client_secret: str | None, registration_access_token: str
    ) -> ClientRow | None:
        """Replace a client's metadata and registration access token, and its secret unless `None` (RFC 7592
        §2.2 PUT)."""
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE clients SET metadata = ?, secret_hash = COALESCE(?, secret_hash), rat_hash = ?"
                " WHERE client_id = ? AND is_admin = 0",
                (
                    json.dumps(metadata),
                    None if client_secret is None else secret_hash(client_secret),
                    secret_hash(registration_access_token),
                    client_id,
                ),
            )
            if cursor.rowcount != 1:
                return None
            row = conn.execute("SELECT * FROM clients WHERE client_id = ?", (client_id,)).fetchone()
        return self._client(row)

    def delete_client(self, client_id: str) -> bool:
        """Delete a client and revoke every token issued to it."""
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM clients WHERE client_id = ? AND is_admin = 0", (client_id,))
            conn.execute("UPDATE tokens SET revoked = 1 WHERE client_id = ?", (client_id,))
        return cursor.rowcount == 1

    # -- static initial access tokens ----------------------------------------------------------------------

    def set_static_initial_access_tokens(self, rotating: Iterable[str], plain: Iterable[str] = ()) -> None:
        """Make exactly these the accepted static initial access tokens: clients registered with a `rotating` one
        get a new secret on every PUT, those registered with a `plain` one keep theirs."""
        rows = {secret_hash(t): 1 for t in rotating} | {secret_hash(t): 0 for t in plain}
        now = int(time.time())
        with self._write() as conn:
            conn.execute("DELETE FROM initial_access_tokens")
            conn.executemany(
                "INSERT INTO initial_access_tokens (token_hash, rotates_secret, created_at) VALUES (?, ?, ?)",
                [(h, r, now) for h, r in rows.items()],
            )

    def static_initial_access_token(self, token: str) -> bool | None:
        """`None` when `token` is no static initial access token; else whether its clients rotate on PUT."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT rotates_secret FROM initial_access_tokens WHERE token_hash = ?", (secret_hash(token),)
            ).fetchone()
        return None if row is None else bool(row["rotates_secret"])

    # -- issued access tokens ------------------------------------------------------------------------------

    def record_token(self, claims: dict[str, Any]) -> None:
        """Remember an issued access token by its `jti`; records expired a day ago are pruned."""
        now = int(time.time())
        with self._write() as conn:
            conn.execute("DELETE FROM tokens WHERE expires_at < ?", (now - 86400,))
            conn.execute(
                "INSERT INTO tokens (jti, client_id, claims, expires_at) VALUES (?, ?, ?, ?)",
                (claims["jti"], claims["client_id"], json.dumps(claims), int(claims["exp"])),
            )

    def get_token(self, jti: str) -> TokenRow | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM tokens WHERE jti = ?", (jti,)).fetchone()
        if row is None:
            return None
        return TokenRow(
            jti=row["jti"],
            client_id=row["client_id"],
            claims=json.loads(row["claims"]),
            expires_at=row["expires_at"],
            revoked=bool(row["revoked"]),
            consumed_at=row["consumed_at"],
        )

    def consume_token(self, jti: str, now: int) -> bool:
        """Use up a token once (a minted initial access token): `True` for the first use only."""
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE tokens SET consumed_at = ? WHERE jti = ? AND consumed_at IS NULL AND revoked = 0"
                " AND expires_at > ?",
                (now, jti, now),
            )
        return cursor.rowcount == 1
