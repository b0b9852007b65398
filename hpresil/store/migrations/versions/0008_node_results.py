"""a node's latest results move to a table of their own: every heartbeat updates its
node's row, and SQLite rewrites a row whole, some 40 KB of results with it

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # the foreign key last: on SQLite, dropping the column rebuilds nodes, and the rows
    # of a table referring to it (ON DELETE CASCADE) would go with the old one
    op.create_table(
        "node_results",
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("node", name="pk_node_results"),
    )
    op.execute(
        "INSERT INTO node_results (node, results) "
        "SELECT name, last_results FROM nodes WHERE last_results IS NOT NULL"
    )
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("last_results")
    with op.batch_alter_table("node_results") as batch:
        batch.create_foreign_key(
            "fk_node_results_node_nodes", "nodes", ["node"], ["name"], ondelete="CASCADE"
        )


def downgrade() -> None:
    op.add_column("nodes", sa.Column("last_results", sa.JSON(), nullable=True))  # no rebuild
    op.execute(
        "UPDATE nodes SET last_results = "
        "(SELECT results FROM node_results WHERE node_results.node = nodes.name)"
    )
    op.drop_table("node_results")
