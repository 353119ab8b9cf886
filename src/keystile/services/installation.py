"""Installation-wide values (organization id, config version, key check) and start-up checks."""

from __future__ import annotations

import base64
import os
import uuid

from sqlalchemy import select, update

from keystile.domain.errors import ConfigurationError, VaultError
from keystile.services.context import Ctx, Runtime
from keystile.store.models import Installation

__all__ = ["bump_config_version", "config_version", "ensure", "organization_id", "shared_cache_key"]

_KEY_CHECK = "keystile-key-check"


async def ensure(runtime: Runtime) -> Installation:
    """Create the installation row on first start; refuse to start with the wrong secret key.

    Raises:
        ConfigurationError: the database was encrypted with a key this process does not have.
    """
    async with runtime.sessions() as session:
        row = await session.get(Installation, 1)
        vault = runtime.vault
        if row is None:
            row = Installation(id=1, organization_id=uuid.uuid4(), config_version=1)
            row.key_check = vault.encrypt(_KEY_CHECK, table="installation", row_id=1, field="key_check")
            row.secrets = {
                "shared_cache_key": vault.encrypt(
                    base64.b64encode(os.urandom(32)).decode(), table="installation", row_id=1, field="shared_cache_key"
                )
            }
            session.add(row)
            from keystile.services.portals import create_default  # portals imports this module

            await create_default(session)
            await session.commit()
            return row
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
        return row


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
