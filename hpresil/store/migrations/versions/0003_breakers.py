"""breakers: a failure category that fired on too many nodes, its drains held back;
incidents indexed by (category, detected_at) for the breaker's count

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "breakers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("tripped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("nodes", sa.JSON(), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("held_back", sa.Integer(), nullable=False),
        sa.Column("reset_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reset_by", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breakers")),
    )
    op.create_index(
        op.f("ix_breakers_category_reset_at"), "breakers", ["category", "reset_at"], unique=False
    )
    op.create_index(
        op.f("ix_incidents_category_detected_at"),
        "incidents",
        ["category", "detected_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_incidents_category_detected_at"), table_name="incidents")
    op.drop_index(op.f("ix_breakers_category_reset_at"), table_name="breakers")
    op.drop_table("breakers")
