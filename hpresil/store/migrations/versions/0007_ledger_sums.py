"""incidents indexed for MTTF on SQLite: two indexes that hold, beside the columns, the
values each incident adds to the ledger's sums (its repair in days, whether it is a
failure of the node, the span of its times, its drained interval as text), so that
SQLite reads them instead of working them out for a million rows
(hpresil.store.reliability, which names the same expressions). SQLite only:
PostgreSQL sums the ledger with the indexes of 0005 and has no julianday().

The expressions are copied here as they were written: changing them in
hpresil.store.reliability takes a new migration that rebuilds these indexes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "'9999-12-31 23:59:59.999999'"
HI = f"max(detected_at, coalesce(drained_at, detected_at), coalesce(resolved_at, {OPEN}))"
LO = (
    "CASE WHEN resolved_at < drained_at THEN '' ELSE min(detected_at,"
    " coalesce(drained_at, detected_at), coalesce(resolved_at, detected_at)) END"
)
FAILURE = "category NOT IN ('app', 'operator', 'job_hang') AND job_id IS NULL AND shared_id IS NULL"
TOOK = "julianday(resolved_at) - julianday(drained_at)"
PROOF = f"drained_at || ',' || coalesce(resolved_at, {OPEN})"
RAW = ["category", "detected_at", "drained_at", "resolved_at", "job_id", "shared_id"]
BY_NODE: list[str | sa.TextClause] = [
    "node",
    sa.text(HI),
    sa.text(LO),
    sa.text(FAILURE),
    sa.text(TOOK),
    sa.text(PROOF),
    *RAW,
]
BY_CATEGORY: list[str | sa.TextClause] = ["category", sa.text(FAILURE), sa.text(TOOK)]


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_index("ix_incidents_ledger", "incidents", BY_NODE, unique=False)
    op.create_index("ix_incidents_ledger_by_category", "incidents", BY_CATEGORY, unique=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("ix_incidents_ledger_by_category", table_name="incidents")
    op.drop_index("ix_incidents_ledger", table_name="incidents")
