"""shared_faults: nodes under one switch, rack or power domain failing alike, one
incident on the component; incidents.shared_id points at it

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shared_faults",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("component", sa.String(128), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("nodes", sa.JSON(), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("merged_into", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shared_faults")),
    )
    op.create_index(
        op.f("ix_shared_faults_component_category_resolved_at"),
        "shared_faults",
        ["component", "category", "resolved_at"],
        unique=False,
    )
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("shared_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_incidents_shared_id_shared_faults"), "shared_faults", ["shared_id"], ["id"]
        )
        batch.create_index(op.f("ix_incidents_shared_id"), ["shared_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_index(op.f("ix_incidents_shared_id"))
        batch.drop_constraint(op.f("fk_incidents_shared_id_shared_faults"), type_="foreignkey")
        batch.drop_column("shared_id")
    op.drop_index(
        op.f("ix_shared_faults_component_category_resolved_at"), table_name="shared_faults"
    )
    op.drop_table("shared_faults")
