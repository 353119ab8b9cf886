"""developer tokens: a rotated refresh token keeps its successor session for the reuse grace

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("developer_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secrets", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("developer_tokens", schema=None) as batch_op:
        batch_op.drop_column("secrets")
