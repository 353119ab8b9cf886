"""config feed: NOTIFY keystile_config when installation.config_version moves (PostgreSQL only)

A trigger, so every replica's commit wakes the gateways held by every other replica (contracts/gateway.md §2:
a committed change reaches a waiting gateway within 1 s); PostgreSQL delivers the notification on commit only.
SQLite has a single replica and wakes its waiters in process.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 02:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION keystile_config_notify() RETURNS trigger AS $$
        BEGIN
            IF NEW.config_version IS DISTINCT FROM OLD.config_version THEN
                PERFORM pg_notify('keystile_config', NEW.config_version::text);
            END IF;
            RETURN NEW;
        END
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER installation_config_notify AFTER UPDATE OF config_version ON installation "
        "FOR EACH ROW EXECUTE FUNCTION keystile_config_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS installation_config_notify ON installation")
    op.execute("DROP FUNCTION IF EXISTS keystile_config_notify()")
