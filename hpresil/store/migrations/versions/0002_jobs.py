"""jobs: the job ledger, its interruptions, job-scoped incidents, action payloads

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("job_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("payload", sa.JSON(), nullable=True))
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        _ts("submit_time", nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("protected", sa.Boolean(), nullable=False),
        sa.Column("ckpt_dir", sa.Text(), nullable=True),
        sa.Column("budget", sa.Integer(), nullable=True),
        sa.Column("hang_s", sa.Float(), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("nodes", sa.Text(), nullable=False),
        sa.Column("restarts", sa.Integer(), nullable=False),
        _ts("started_at"),
        _ts("first_seen_at", nullable=False),
        _ts("last_seen_at", nullable=False),
        _ts("ended_at"),
        sa.Column("checkpoint", sa.Text(), nullable=True),
        sa.Column("checkpoint_step", sa.Integer(), nullable=True),
        _ts("checkpoint_at"),
        sa.Column("step", sa.Integer(), nullable=True),
        _ts("progress_at"),
        sa.Column("progress_source", sa.String(32), nullable=True),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("gpu_util_pct", sa.Float(), nullable=True),
        sa.Column("usage", sa.JSON(), nullable=True),
        _ts("idle_since"),
        _ts("idle_acted_at"),
        _ts("hang_signalled_at"),
        _ts("held_at"),
        sa.Column("held_reason", sa.Text(), nullable=True),
        sa.Column("blamed", sa.Text(), nullable=True),
        sa.Column("excluded", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("job_id", "submit_time", name=op.f("uq_jobs_job_id_submit_time")),
    )
    op.create_index(op.f("ix_jobs_job_id"), "jobs", ["job_id"])
    op.create_table(
        "job_interruptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_row_id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        _ts("at", nullable=False),
        sa.Column("node", sa.String(128), nullable=True),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("restarts_before", sa.Integer(), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=True),
        sa.Column("checkpoint_step", sa.Integer(), nullable=True),
        sa.Column("lost_s", sa.Float(), nullable=True),
        _ts("resumed_at"),
        sa.Column("resumed_node", sa.String(128), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_row_id"], ["jobs.id"], name=op.f("fk_job_interruptions_job_row_id_jobs")
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_job_interruptions_incident_id_incidents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_interruptions")),
    )
    op.create_index(op.f("ix_job_interruptions_job_row_id"), "job_interruptions", ["job_row_id"])


def downgrade() -> None:
    op.drop_table("job_interruptions")
    op.drop_table("jobs")
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("payload")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("job_id")
