"""nodes keep the worst status of their latest results and the digest of the agent's
state they stand for: heartbeats carry the digest only, and the node list reads the
worst status instead of every node's results

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("worst", sa.String(16), nullable=True))
        batch.add_column(sa.Column("state_digest", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("state_digest")
        batch.drop_column("worst")
