"""the recovery ladder's steps: each incident's reboot, burn-in ... with why, when
and how each ended

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recovery_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("rung", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name="fk_recovery_steps_incident_id_incidents"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_recovery_steps"),
    )
    op.create_index("ix_recovery_steps_incident_id", "recovery_steps", ["incident_id"])


def downgrade() -> None:
    op.drop_index("ix_recovery_steps_incident_id", table_name="recovery_steps")
    op.drop_table("recovery_steps")
