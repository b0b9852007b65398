"""The controller's tables, as SQLAlchemy 2 typed declarative models.

Every timestamp is aware UTC (:class:`UtcDateTime`); enums are stored as their
values. Nothing here is SQLite-specific: the same models run on PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from hpresil.api import ActionStatus
from hpresil.store.types import StrEnumType, UtcDateTime
from hpresil.vocab import Action, Category

ActionKind = Literal["drain", "requeue", "resume"]
IncidentStatus = Literal["open", "resolved"]
OPEN: IncidentStatus = "open"
RESOLVED: IncidentStatus = "resolved"


# named constraints, so later migrations can alter them (SQLite batch mode included)
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class NodeRow(Base):
    """A node hpresil knows of: it reported, or Slurm listed it."""

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_report_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_seq: Mapped[int | None] = mapped_column(Integer)
    gpus: Mapped[int | None] = mapped_column(Integer)
    # latest result per (check, gpu), as the agent sent them
    last_results: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    slurm_state: Mapped[str | None] = mapped_column(String(64))
    slurm_reason: Mapped[str | None] = mapped_column(Text)
    drained_by_hpresil: Mapped[bool] = mapped_column(default=False)
    slurm_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class ReportRow(Base):
    """One agent report, kept for ``controller.report_retention_days``."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[str] = mapped_column(String(64), unique=True)
    node: Mapped[str] = mapped_column(ForeignKey("nodes.name"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


class IncidentRow(Base):
    """A fault episode on one node: opened by the first fault, resolved when the
    node returns to service. At most one is open per node."""

    __tablename__ = "incidents"
    __table_args__ = (Index(None, "node", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    node: Mapped[str] = mapped_column(ForeignKey("nodes.name"))
    status: Mapped[IncidentStatus] = mapped_column(String(16), default=OPEN)
    category: Mapped[Category] = mapped_column(StrEnumType(Category))
    action: Mapped[Action] = mapped_column(StrEnumType(Action))
    hardware: Mapped[bool] = mapped_column()
    summary: Mapped[str] = mapped_column(Text, default="")
    xid: Mapped[int | None] = mapped_column(Integer)
    gpu_index: Mapped[int | None] = mapped_column(Integer)
    gpu_uuid: Mapped[str | None] = mapped_column(String(128))
    gpu_serial: Mapped[str | None] = mapped_column(String(128))
    gpu_pci: Mapped[str | None] = mapped_column(String(32))
    gpu_name: Mapped[str | None] = mapped_column(String(128))
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime())
    drained_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    findings: Mapped[int] = mapped_column(Integer, default=0)

    jobs: Mapped[list[IncidentJobRow]] = relationship(
        back_populates="incident", order_by="IncidentJobRow.id"
    )
    actions: Mapped[list[ActionRow]] = relationship(
        back_populates="incident", order_by="ActionRow.id"
    )


class IncidentJobRow(Base):
    """A job that was running on the node when it was drained for an incident.

    Job ids restart at 1 when Slurm's state is wiped, so a job is keyed on
    (job id, submit time); ``restart_count`` is the count when it was requeued, so
    its next incarnation (Slurm resets the submit time on requeue) is recognised."""

    __tablename__ = "incident_jobs"
    __table_args__ = (UniqueConstraint("incident_id", "job_id", "submit_time"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    job_id: Mapped[int] = mapped_column(Integer)
    submit_time: Mapped[datetime] = mapped_column(UtcDateTime())
    name: Mapped[str] = mapped_column(String(256), default="")
    restart_count: Mapped[int] = mapped_column(Integer, default=0)
    requeue_outcome: Mapped[str | None] = mapped_column(String(32))
    requeued_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    restarted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    restarted_node: Mapped[str | None] = mapped_column(String(128))

    incident: Mapped[IncidentRow] = relationship(back_populates="jobs")


class ActionRow(Base):
    """One thing hpresil did or will do to Slurm, with the reason it was decided."""

    __tablename__ = "actions"
    __table_args__ = (Index(None, "status", "not_before"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    incident_job_id: Mapped[int | None] = mapped_column(ForeignKey("incident_jobs.id"))
    kind: Mapped[ActionKind] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(128))  # node name or job id
    why: Mapped[str] = mapped_column(Text)
    requeue_jobs: Mapped[bool] = mapped_column(default=False)  # drain: then requeue its jobs
    status: Mapped[ActionStatus] = mapped_column(
        StrEnumType(ActionStatus), default=ActionStatus.PENDING
    )
    outcome: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    not_before: Mapped[datetime] = mapped_column(UtcDateTime())  # back-off after a failure
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    incident: Mapped[IncidentRow | None] = relationship(back_populates="actions")
    incident_job: Mapped[IncidentJobRow | None] = relationship()
