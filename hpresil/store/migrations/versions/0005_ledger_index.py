"""incidents indexed for MTTF at fleet size: two covering indexes, by node and drain
time and by category and detection time, hold every column the ledger's aggregates
read (hpresil.store.reliability); the second one replaces (category, detected_at),
whose queries (the breaker's count) it answers as well

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BY_NODE = ["node", "drained_at", "resolved_at", "detected_at", "category", "job_id", "shared_id"]
BY_CATEGORY = [
    "category",
    "detected_at",
    "job_id",
    "shared_id",
    "drained_at",
    "resolved_at",
    "node",
]


def upgrade() -> None:
    op.drop_index(op.f("ix_incidents_category_detected_at"), table_name="incidents")
    op.create_index("ix_incidents_by_node", "incidents", BY_NODE, unique=False)
    op.create_index("ix_incidents_by_category", "incidents", BY_CATEGORY, unique=False)


def downgrade() -> None:
    op.drop_index("ix_incidents_by_category", table_name="incidents")
    op.drop_index("ix_incidents_by_node", table_name="incidents")
    op.create_index(
        op.f("ix_incidents_category_detected_at"),
        "incidents",
        ["category", "detected_at"],
        unique=False,
    )
