"""initial schema: nodes, reports, incidents, incident_jobs, actions

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(128), nullable=False),
        _ts("first_seen_at", nullable=False),
        _ts("last_report_at"),
        sa.Column("last_seq", sa.Integer(), nullable=True),
        sa.Column("gpus", sa.Integer(), nullable=True),
        sa.Column("last_results", sa.JSON(), nullable=True),
        sa.Column("slurm_state", sa.String(64), nullable=True),
        sa.Column("slurm_reason", sa.Text(), nullable=True),
        sa.Column("drained_by_hpresil", sa.Boolean(), nullable=False),
        _ts("slurm_seen_at"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_nodes")),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("hardware", sa.Boolean(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("xid", sa.Integer(), nullable=True),
        sa.Column("gpu_index", sa.Integer(), nullable=True),
        sa.Column("gpu_uuid", sa.String(128), nullable=True),
        sa.Column("gpu_serial", sa.String(128), nullable=True),
        sa.Column("gpu_pci", sa.String(32), nullable=True),
        sa.Column("gpu_name", sa.String(128), nullable=True),
        _ts("observed_at", nullable=False),
        _ts("detected_at", nullable=False),
        _ts("drained_at"),
        _ts("resolved_at"),
        sa.Column("findings", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["node"], ["nodes.name"], name=op.f("fk_incidents_node_nodes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    op.create_index(op.f("ix_incidents_node_status"), "incidents", ["node", "status"])
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.String(64), nullable=False),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        _ts("sent_at", nullable=False),
        _ts("received_at", nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["node"], ["nodes.name"], name=op.f("fk_reports_node_nodes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("report_id", name=op.f("uq_reports_report_id")),
    )
    op.create_index(op.f("ix_reports_node"), "reports", ["node"])
    op.create_index(op.f("ix_reports_received_at"), "reports", ["received_at"])
    op.create_table(
        "incident_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        _ts("submit_time", nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("restart_count", sa.Integer(), nullable=False),
        sa.Column("requeue_outcome", sa.String(32), nullable=True),
        _ts("requeued_at"),
        _ts("restarted_at"),
        sa.Column("restarted_node", sa.String(128), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_jobs_incident_id_incidents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_jobs")),
        sa.UniqueConstraint(
            "incident_id",
            "job_id",
            "submit_time",
            name=op.f("uq_incident_jobs_incident_id_job_id_submit_time"),
        ),
    )
    op.create_table(
        "actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("incident_job_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("requeue_jobs", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("created_at", nullable=False),
        _ts("not_before", nullable=False),
        _ts("done_at"),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_actions_incident_id_incidents")
        ),
        sa.ForeignKeyConstraint(
            ["incident_job_id"],
            ["incident_jobs.id"],
            name=op.f("fk_actions_incident_job_id_incident_jobs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_actions")),
    )
    op.create_index(op.f("ix_actions_incident_id"), "actions", ["incident_id"])
    op.create_index(op.f("ix_actions_status_not_before"), "actions", ["status", "not_before"])


def downgrade() -> None:
    op.drop_table("actions")
    op.drop_table("incident_jobs")
    op.drop_table("reports")
    op.drop_table("incidents")
    op.drop_table("nodes")
