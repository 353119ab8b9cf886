"""Installation-wide values (organization id, config version, key check) and start-up checks."""

from __future__ import annotations

import base64
import os
import uuid

from sqlalchemy import select, update

from keystile.domain.errors import ConfigurationError, ConflictError, VaultError
from keystile.services.context import Ctx, Runtime
from keystile.store.errors import commit_or_conflict
from keystile.store.models import Installation
from keystile.store.vault import Vault

__all__ = ["bump_config_version", "config_version", "ensure", "organization_id", "shared_cache_key"]

_KEY_CHECK = "keystile-key-check"


async def ensure(runtime: Runtime) -> Installation:
    """Create the installation row (and the default portal) on first start; refuse to start with the wrong key.

    Replicas may start together on an empty database: the one whose insert loses reads the winner's row.

    Raises:
        ConfigurationError: the database was encrypted with a key this process does not have.
    """
    from keystile.services.portals import create_default  # portals imports this module

    vault = runtime.vault
    for _attempt in range(2):
        async with runtime.sessions() as session:
            row = await session.get(Installation, 1)
            if row is None:
                row = Installation(id=1, organization_id=uuid.uuid4(), config_version=1)
                row.key_check = vault.encrypt(_KEY_CHECK, table="installation", row_id=1, field="key_check")
                row.secrets = {
                    "shared_cache_key": vault.encrypt(
                        base64.b64encode(os.urandom(32)).decode(),
                        table="installation",
                        row_id=1,
                        field="shared_cache_key",
                    )
                }
                session.add(row)
                await create_default(session)
                try:
                    async with commit_or_conflict(session, "another replica initialised the database first"):
                        await session.commit()
                except ConflictError:
                    continue  # read the other replica's row and check our key against it
                return row
            _check_key(vault, row)
            return row
    raise ConfigurationError("the installation row could not be created or read; is the database writable?")


def _check_key(vault: Vault, row: Installation) -> None:
    try:
        ok = row.key_check is not None and (
            vault.decrypt(row.key_check, table="installation", row_id=1, field="key_check") == _KEY_CHECK
        )
    except VaultError as exc:
        raise ConfigurationError(
            "KEYSTILE_SECRET_KEY does not match the key this database was encrypted with; use the same key "
            "on every replica (list retired keys in KEYSTILE_OLD_SECRET_KEYS during a rotation)"
        ) from exc
    if not ok:  # pragma: no cover - a decrypting key check always holds the constant
        raise ConfigurationError("the key check row is corrupt")


async def organization_id(ctx: Ctx) -> uuid.UUID:
    row = await ctx.session.get(Installation, 1)
    if row is None:
        raise ConfigurationError("installation not initialised; run keystile migrate")
    return row.organization_id


async def shared_cache_key(ctx: Ctx) -> str:
    row = await ctx.session.get(Installation, 1)
    if row is None:
        raise ConfigurationError("installation not initialised; run keystile migrate")
    return ctx.vault.decrypt(row.secrets["shared_cache_key"], table="installation", row_id=1, field="shared_cache_key")


async def bump_config_version(ctx: Ctx) -> None:
    """Move the data-plane config version, in the caller's transaction."""
    await ctx.session.execute(
        update(Installation).where(Installation.id == 1).values(config_version=Installation.config_version + 1)
    )


async def config_version(ctx: Ctx) -> int:
    return int(
        (await ctx.session.execute(select(Installation.config_version).where(Installation.id == 1))).scalar_one()
    )
