"""Secret-key rotation: every vault ciphertext re-encrypted under a new key, in one transaction."""

from __future__ import annotations

from sqlalchemy import select

from keystile.services.context import Runtime
from keystile.settings import Settings, decode_key
from keystile.store.models import Base, Installation
from keystile.store.vault import Vault

__all__ = ["rotate"]


async def rotate(settings: Settings, new_key_b64: str, source: str) -> int:
    """Re-encrypt every secret of every table with a `secrets` column, and the key check.

    Returns:
        how many values were rewritten.

    Raises:
        ConfigurationError: a malformed new key; VaultError: a value no known key decrypts (nothing written).
    """
    new_key = decode_key(new_key_b64, source)
    rt = Runtime.build(settings)
    old = rt.vault
    current = settings.secret_key_bytes()
    olds = settings.old_secret_key_bytes()
    readers = list(([current] if current else []) + olds)
    # the dev key file is part of the old vault already; reading goes through `old`
    new = Vault(new_key, readers)
    count = 0
    try:
        async with rt.sessions() as session:
            for mapper in Base.registry.mappers:
                cls = mapper.class_
                if "secrets" not in mapper.columns:
                    continue
                table = cls.__tablename__
                # locked: a secret changed meanwhile (an application's, a refresh successor) is neither overwritten
                # with its old value nor deleted under the rewrite; rows without secrets are not read at all
                rows = await session.execute(select(cls).where(cls.secrets.is_not(None)).with_for_update())
                for row in rows.scalars():
                    if not row.secrets:
                        continue
                    values = dict(row.secrets)
                    for field, token in values.items():
                        plain = old.decrypt(token, table=table, row_id=row.id, field=field)
                        values[field] = new.encrypt(plain, table=table, row_id=row.id, field=field)
                        count += 1
                    row.secrets = values
            inst = await session.get(Installation, 1)
            if inst is not None and inst.key_check:
                plain = old.decrypt(inst.key_check, table="installation", row_id=1, field="key_check")
                inst.key_check = new.encrypt(plain, table="installation", row_id=1, field="key_check")
            await session.commit()
    finally:
        await rt.close()
    return count
