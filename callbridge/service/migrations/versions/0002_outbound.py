"""Outbound calls (issue 15): ``calls.direction`` and the campaign tables.

Existing calls were all answered inbound, so the new column's server default fills them in.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(
            sa.Column("direction", sa.String(16), nullable=False, server_default="inbound")
        )
    op.create_table(
        "campaigns",
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("policy", sa.JSON, nullable=False),
    )
    op.create_table(
        "campaign_rows",
        sa.Column(
            "campaign_id",
            sa.String(64),
            sa.ForeignKey("campaigns.campaign_id"),
            primary_key=True,
        ),
        sa.Column("line", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("row_key", sa.String(256), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("variables", sa.JSON, nullable=False),
        sa.Column("tz", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_at", sa.Double, nullable=False),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("claimed_at", sa.Double, nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("call_id", sa.String(128), nullable=True),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.UniqueConstraint("tenant", "row_key", name="uq_campaign_rows_tenant_key"),
    )
    op.create_index("ix_campaign_rows_due", "campaign_rows", ["state", "next_at"])


def downgrade() -> None:
    op.drop_index("ix_campaign_rows_due", table_name="campaign_rows")
    op.drop_table("campaign_rows")
    op.drop_table("campaigns")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("direction")
