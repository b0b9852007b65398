"""The controller's tables, as SQLAlchemy 2 typed declarative models.

Every timestamp is aware UTC (:class:`UtcDateTime`); enums are stored as their
values. Nothing here is SQLite-specific: the same models run on PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from hpresil.store.types import StrEnumType, UtcDateTime
from hpresil.vocab import Action, Category
from hpresil.vocab.actions import ActionKind, ActionStatus

IncidentStatus = Literal["open", "resolved"]
# The recovery ladder's rungs and how a step on one ends (hpresil.controller.recovery)
Rung = Literal["gate", "reset_gpu", "reboot", "burnin", "resume", "replace"]
StepStatus = Literal["running", "passed", "failed", "stopped"]
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
    # latest result per (check, gpu), as the agent sent them (last_results): loaded with
    # the node by a second query, unless a query says otherwise (the reconcile pass)
    held: Mapped[NodeResultsRow | None] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )
    # the worst status among them ("fail", "warn", "ok"; None: not worked out yet), and
    # the digest of the agent's state they stand for (vocab.state_digest)
    worst: Mapped[str | None] = mapped_column(String(16))
    state_digest: Mapped[str | None] = mapped_column(String(64))
    slurm_state: Mapped[str | None] = mapped_column(String(64))
    slurm_reason: Mapped[str | None] = mapped_column(Text)
    drained_by_hpresil: Mapped[bool] = mapped_column(default=False)
    slurm_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # an operator's hold (``hpresil hold NODE``): the recovery ladder leaves the node alone
    hold_by: Mapped[str | None] = mapped_column(String(128))
    hold_why: Mapped[str | None] = mapped_column(Text)
    hold_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    @property
    def last_results(self) -> list[dict[str, Any]] | None:
        """The node's latest result per (check, GPU), as the agent sent them."""
        return None if self.held is None else self.held.results

    @last_results.setter
    def last_results(self, results: list[dict[str, Any]] | None) -> None:
        if results is None:
            self.held = None  # its row deleted
        elif self.held is None:
            self.held = NodeResultsRow(results=results)
        else:
            self.held.results = results


class NodeResultsRow(Base):
    """A node's latest results, in a row of their own (migration 0008): some 40 KB of
    JSON on a node of 8 GPUs, which every heartbeat's update of its node would rewrite
    if they shared its row (SQLite writes a row whole)."""

    __tablename__ = "node_results"

    node: Mapped[str] = mapped_column(
        ForeignKey("nodes.name", ondelete="CASCADE"), primary_key=True
    )
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class ReportRow(Base):
    """An agent report that changed something, kept for
    ``controller.report_retention_days``: its body holds the results that changed
    (all of a late one's). Heartbeats and reports that changed nothing leave no row."""

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
    # by_category also answers the breaker's "nodes this category hit lately"; the two
    # hold every column the ledger's aggregates read (hpresil.store.reliability).
    # SQLite also has ix_incidents_ledger and ix_incidents_ledger_by_category (migration
    # 0007): indexes on expressions (julianday()) that PostgreSQL lacks and that alembic
    # cannot compare on SQLite, so they are not declared here
    __table_args__ = (
        Index(None, "node", "status"),
        Index(
            "ix_incidents_by_node",
            "node",
            "drained_at",
            "resolved_at",
            "detected_at",
            "category",
            "job_id",
            "shared_id",
        ),
        Index(
            "ix_incidents_by_category",
            "category",
            "detected_at",
            "job_id",
            "shared_id",
            "drained_at",
            "resolved_at",
            "node",
        ),
    )

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
    # a job's incident (a hang, or a fault blamed on the job): never the node's open
    # incident, never drains it, never counts against its MTTF
    job_id: Mapped[int | None] = mapped_column(Integer)
    # the shared component (switch, rack, power domain) this fault is put down to: the
    # node is still drained, but the failure is not the node's (not in its MTTF)
    shared_id: Mapped[int | None] = mapped_column(ForeignKey("shared_faults.id"), index=True)

    jobs: Mapped[list[IncidentJobRow]] = relationship(
        back_populates="incident", order_by="IncidentJobRow.id"
    )
    actions: Mapped[list[ActionRow]] = relationship(
        back_populates="incident", order_by="ActionRow.id"
    )
    shared: Mapped[SharedFaultRow | None] = relationship(back_populates="incidents")
    recovery: Mapped[list[RecoveryStepRow]] = relationship(
        back_populates="incident", order_by="RecoveryStepRow.id"
    )


class RecoveryStepRow(Base):
    """One step of an incident's recovery ladder (reboot, burn-in, ...): why it was
    taken, when it started and ended, and how it ended."""

    __tablename__ = "recovery_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    rung: Mapped[Rung] = mapped_column(String(16))
    status: Mapped[StepStatus] = mapped_column(String(16), default="running")
    why: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    outcome: Mapped[str | None] = mapped_column(Text)  # what ended it, in a line
    # a step the node's agent runs (a GPU reset, a burn-in): when its command was first
    # given to the agent, in the answer to one of its reports
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    incident: Mapped[IncidentRow] = relationship(back_populates="recovery")


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
    # what the action needs beyond its target: a signal's name, a webhook's event body
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
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


class JobRow(Base):
    """A Slurm job hpresil follows: protected (it named a checkpoint directory) or seen
    holding GPUs by an agent. Keyed like incident jobs on (job id, first submit time):
    a requeue keeps the id and changes the submit time, so ``submit_time`` is the
    first one seen and the restart count tells incarnations apart."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("job_id", "submit_time"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(Integer, index=True)
    submit_time: Mapped[datetime] = mapped_column(UtcDateTime())
    name: Mapped[str] = mapped_column(String(256), default="")
    user: Mapped[str] = mapped_column(String(128), default="")
    protected: Mapped[bool] = mapped_column(default=False)
    ckpt_dir: Mapped[str | None] = mapped_column(Text)
    budget: Mapped[int | None] = mapped_column(Integer)  # the job's own; None: the default
    hang_s: Mapped[float | None] = mapped_column(Float)  # the job's own; None: the default
    state: Mapped[str] = mapped_column(String(32), default="")  # Slurm's, last seen
    nodes: Mapped[str] = mapped_column(Text, default="")  # comma list, last seen running
    restarts: Mapped[int] = mapped_column(Integer, default=0)  # Slurm's restart count
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # this incarnation
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    checkpoint: Mapped[str | None] = mapped_column(Text)
    checkpoint_step: Mapped[int | None] = mapped_column(Integer)
    checkpoint_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    step: Mapped[int | None] = mapped_column(Integer)
    progress_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    progress_source: Mapped[str | None] = mapped_column(String(32))
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    gpu_util_pct: Mapped[float | None] = mapped_column(Float)
    # per node: {"util": pct | null, "gpus": n, "at": iso}; the job is idle when all are
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    idle_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    idle_acted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    hang_signalled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    held_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    held_reason: Mapped[str | None] = mapped_column(Text)
    blamed: Mapped[str | None] = mapped_column(Text)  # why the job, not a node, is at fault
    # nodes hpresil put in the job's ExcNodeList (the job's own exclusions are kept)
    excluded: Mapped[list[str] | None] = mapped_column(JSON)

    interruptions: Mapped[list[JobInterruptionRow]] = relationship(
        back_populates="job", order_by="JobInterruptionRow.id"
    )


class JobInterruptionRow(Base):
    """One time a job was stopped and put back in the queue (or held), and what it lost:
    the work since the checkpoint it resumes from."""

    __tablename__ = "job_interruptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_row_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    at: Mapped[datetime] = mapped_column(UtcDateTime())  # when it was stopped
    node: Mapped[str | None] = mapped_column(String(128))
    cause: Mapped[str] = mapped_column(Text, default="")
    restarts_before: Mapped[int] = mapped_column(Integer, default=0)
    checkpoint: Mapped[str | None] = mapped_column(Text)  # the newest complete one then
    checkpoint_step: Mapped[int | None] = mapped_column(Integer)
    lost_s: Mapped[float | None] = mapped_column(Float)  # at - checkpoint_at (or - start)
    resumed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resumed_node: Mapped[str | None] = mapped_column(String(128))

    job: Mapped[JobRow] = relationship(back_populates="interruptions")


class BreakerRow(Base):
    """A tripped breaker: one failure category fired on too many nodes at once, so
    its drains are held back until an operator resets it. The fleet's incident."""

    __tablename__ = "breakers"
    __table_args__ = (Index(None, "category", "reset_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[Category] = mapped_column(StrEnumType(Category))
    tripped_at: Mapped[datetime] = mapped_column(UtcDateTime())
    nodes: Mapped[list[str]] = mapped_column(JSON)  # the nodes it fired on in the window
    why: Mapped[str] = mapped_column(Text)
    held_back: Mapped[int] = mapped_column(Integer, default=0)  # drains held back since
    reset_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    reset_by: Mapped[str | None] = mapped_column(String(128))


class SharedFaultRow(Base):
    """Nodes under one component (a switch, a rack, a power domain) failing alike at
    once: one incident on the component, the nodes' incidents under it. Resolved when
    the last of them is, or when a larger component's takes its nodes over."""

    __tablename__ = "shared_faults"
    __table_args__ = (Index(None, "component", "category", "resolved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # switch, rack, power
    component: Mapped[str] = mapped_column(String(128))
    category: Mapped[Category] = mapped_column(StrEnumType(Category))
    size: Mapped[int] = mapped_column(Integer)  # nodes under the component
    nodes: Mapped[list[str]] = mapped_column(JSON)  # the nodes that failed, sorted
    why: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    merged_into: Mapped[int | None] = mapped_column(Integer)  # a larger component's, later

    incidents: Mapped[list[IncidentRow]] = relationship(
        back_populates="shared", order_by="IncidentRow.id"
    )

    @property
    def label(self) -> str:
        """``switch leaf1``: how drain reasons and the breaker name the component."""
        return f"{self.kind} {self.component}"
