"""Observability and privacy (issue 18): the model and cost of each call, and a keyed hash
of the caller's number (``callbridge calls erase`` finds a caller's calls by it).

Rows written before this revision have none of the three: they stay ``NULL``.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("model", sa.String(128), nullable=True))
        batch.add_column(sa.Column("cost_usd", sa.Double, nullable=True))
        batch.add_column(sa.Column("caller_key", sa.String(64), nullable=True))
    op.create_index("ix_calls_caller_key", "calls", ["caller_key"])


def downgrade() -> None:
    op.drop_index("ix_calls_caller_key", table_name="calls")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("caller_key")
        batch.drop_column("cost_usd")
        batch.drop_column("model")
