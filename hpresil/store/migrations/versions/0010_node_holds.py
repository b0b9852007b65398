"""an operator's hold on a node (``hpresil hold NODE``): the recovery ladder leaves it
alone until released

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # added columns, no table rebuild on SQLite
    op.add_column("nodes", sa.Column("hold_by", sa.String(128), nullable=True))
    op.add_column("nodes", sa.Column("hold_why", sa.Text(), nullable=True))
    op.add_column("nodes", sa.Column("hold_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # SQLite drops a column in place (3.35+): a batch rebuild of nodes would cascade
    # its node_results rows away (see 0008)
    for column in ("hold_at", "hold_why", "hold_by"):
        op.drop_column("nodes", column)
