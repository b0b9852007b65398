"""Queries and small state changes over the tables, each inside a caller's session.

Portable SQL only (no SQLite or PostgreSQL dialect functions, no JSON operators).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, Select, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, lazyload, selectinload

from hpresil.store import shared
from hpresil.store.models import (
    OPEN,
    RESOLVED,
    ActionRow,
    IncidentJobRow,
    IncidentRow,
    IncidentStatus,
    NodeResultsRow,
    NodeRow,
    RecoveryStepRow,
    ReportRow,
    Rung,
)
from hpresil.vocab import Action, Category, GpuIdentity, Report
from hpresil.vocab.actions import ActionKind, ActionStatus

StatusFilter = Literal["open", "resolved", "all"]


# --- nodes and reports ---
def ensure_node(s: Session, name: str, now: datetime, *, lock: bool = False) -> NodeRow:
    """The node's row, created (first seen ``now``) if hpresil never saw it; ``lock``:
    locked until commit where others write beside (PostgreSQL's ``FOR UPDATE``), and
    made by whichever of two first reports comes first (the other waits for it)."""
    node = s.get(NodeRow, name, with_for_update=True if lock else None)
    if node is not None or not lock:
        return add_node(s, name, now) if node is None else node
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    new = {"name": name, "first_seen_at": now, "drained_by_hpresil": False}
    s.execute(insert(NodeRow).values(new).on_conflict_do_nothing(index_elements=["name"]))
    return s.get_one(NodeRow, name, with_for_update=True, populate_existing=True)


def add_node(s: Session, name: str, now: datetime) -> NodeRow:
    """A row for a node hpresil never saw (first seen ``now``)."""
    node = NodeRow(name=name, first_seen_at=now, drained_by_hpresil=False)
    s.add(node)
    return node


def nodes(s: Session) -> Sequence[NodeRow]:
    return s.scalars(select(NodeRow)).all()


def node_results(s: Session) -> Sequence[NodeResultsRow]:
    """Every node's latest results (the nodes that have any)."""
    return s.scalars(select(NodeResultsRow)).all()


MAX_NAMED = 1000  # nodes read by name in one query; more are read with the rest


def nodes_by_name(s: Session, names: Sequence[str]) -> dict[str, NodeRow]:
    """The rows of ``names`` that exist, in one query, without their latest results
    (the reconcile pass: a real node's are tens of kilobytes)."""
    query = select(NodeRow).options(lazyload(NodeRow.held))
    wanted = frozenset(names)
    if len(wanted) <= MAX_NAMED:  # else every row is read: fewer parameters
        query = query.where(NodeRow.name.in_(wanted))
    return {r.name: r for r in s.scalars(query) if r.name in wanted}


def report_seen(s: Session, report_id: str) -> bool:
    found = s.scalar(select(ReportRow.id).where(ReportRow.report_id == report_id))
    return found is not None


def add_report(
    s: Session, report: Report, now: datetime, *, body: dict[str, Any] | None = None
) -> ReportRow:
    """Store ``report``; ``body``: its JSON encoding when the caller has it already."""
    row = ReportRow(
        report_id=report.report_id,
        node=report.node,
        seq=report.seq,
        sent_at=report.sent_at,
        received_at=now,
        body=report.model_dump(mode="json") if body is None else body,
    )
    s.add(row)
    return row


def prune_reports(s: Session, before: datetime) -> int:
    """Delete reports received before ``before``; how many went."""
    result = cast(
        CursorResult[Any], s.execute(delete(ReportRow).where(ReportRow.received_at < before))
    )
    return result.rowcount


# --- incidents ---
def new_incident(
    s: Session,
    node: str,
    now: datetime,
    *,
    status: IncidentStatus = OPEN,
    category: Category | None = None,
    action: Action = Action.NONE,
    hardware: bool = False,
    summary: str = "",
    observed_at: datetime | None = None,
    findings: int = 0,
    job_id: int | None = None,
) -> IncidentRow:
    """A new incident on ``node``, detected ``now`` (observed then too, unless
    ``observed_at`` says otherwise; resolved then, if created ``resolved``). Without a
    ``category`` the caller sets the incident's identity (category, hardware, summary,
    XID, GPU, observed_at) before the session flushes."""
    row = IncidentRow(
        node=node,
        status=status,
        action=action,
        hardware=hardware,
        summary=summary,
        observed_at=observed_at or now,
        detected_at=now,
        resolved_at=now if status == RESOLVED else None,
        findings=findings,
        job_id=job_id,
    )
    if category is not None:
        row.category = category
    s.add(row)
    return row


def add_affected_job(
    s: Session,
    incident: IncidentRow,
    job_id: int,
    submit_time: datetime,
    name: str,
    restart_count: int,
) -> IncidentJobRow:
    """Record that job (``job_id``, ``submit_time``) was hit by ``incident``, with its
    name and Slurm restart count then."""
    row = IncidentJobRow(
        incident=incident,
        job_id=job_id,
        submit_time=submit_time,
        name=name,
        restart_count=restart_count,
    )
    s.add(row)
    return row


def open_incident(s: Session, node: str) -> IncidentRow | None:
    """The node's open incident; a job's incident (``job_id`` set) is never the node's."""
    query = select(IncidentRow).where(
        IncidentRow.node == node, IncidentRow.status == OPEN, IncidentRow.job_id.is_(None)
    )
    return s.scalars(query.order_by(IncidentRow.id)).first()


def open_incidents(s: Session) -> dict[str, IncidentRow]:
    """The open incident of each node that has one."""
    query = select(IncidentRow).where(IncidentRow.status == OPEN, IncidentRow.job_id.is_(None))
    return {row.node: row for row in s.scalars(query)}


def incidents(
    s: Session, status: StatusFilter = "all", node: str | None = None, *, details: bool = True
) -> Sequence[IncidentRow]:
    """Incidents, oldest first; ``details`` loads their jobs and actions too."""
    query = select(IncidentRow)
    if details:
        query = query.options(
            selectinload(IncidentRow.jobs),
            selectinload(IncidentRow.actions),
            selectinload(IncidentRow.shared),
            selectinload(IncidentRow.recovery),
        )
    if status != "all":
        query = query.where(IncidentRow.status == status)
    if node is not None:
        query = query.where(IncidentRow.node == node)
    return s.scalars(query.order_by(IncidentRow.id)).all()


def incident(s: Session, incident_id: int) -> IncidentRow | None:
    return s.get(
        IncidentRow,
        incident_id,
        options=[
            selectinload(IncidentRow.jobs),
            selectinload(IncidentRow.actions),
            selectinload(IncidentRow.shared),
            selectinload(IncidentRow.recovery),
        ],
    )


def earlier_incidents(
    s: Session,
    *,
    category: Category,
    node: str,
    gpu: GpuIdentity | None,
    since: datetime,
    exclude: int | None = None,
) -> int:
    """Incidents of ``category`` detected since ``since`` on the same GPU: matched by
    serial, else UUID (a GPU keeps them when moved), else node and GPU index; on the
    node itself when no GPU is named."""
    query = select(func.count(IncidentRow.id)).where(
        IncidentRow.category == category, IncidentRow.detected_at >= since
    )
    return _count_on(s, query, node, gpu, exclude)


HARDWARE = tuple(c for c in Category if c.is_hardware)


def hardware_incidents(
    s: Session,
    *,
    node: str,
    gpu: GpuIdentity | None,
    since: datetime,
    exclude: int | None = None,
) -> int:
    """The lemon rule's strikes: hardware incidents (any category) detected since
    ``since`` that count against a node as in its MTTF (neither a shared component's
    nor a job's), on the same GPU as :func:`earlier_incidents` matches it, or anywhere
    on ``node`` when no GPU is named."""
    query = select(func.count(IncidentRow.id)).where(
        IncidentRow.category.in_(HARDWARE),
        IncidentRow.detected_at >= since,
        IncidentRow.job_id.is_(None),
        IncidentRow.shared_id.is_(None),
    )
    return _count_on(s, query, node, gpu, exclude)


def _count_on(
    s: Session, query: Select[int], node: str, gpu: GpuIdentity | None, exclude: int | None
) -> int:
    """``query``'s count narrowed to one GPU (serial, else UUID, else node and index)
    or, no GPU named, to ``node``; the incident ``exclude`` left out."""
    if gpu is not None and gpu.serial:
        query = query.where(IncidentRow.gpu_serial == gpu.serial)
    elif gpu is not None and gpu.uuid:
        query = query.where(IncidentRow.gpu_uuid == gpu.uuid)
    else:
        query = query.where(IncidentRow.node == node)
        if gpu is not None:
            query = query.where(IncidentRow.gpu_index == gpu.index)
    if exclude is not None:
        query = query.where(IncidentRow.id != exclude)
    return int(s.scalar(query) or 0)


def drain_queued(s: Session, incident_id: int) -> bool:
    """Whether a drain for the incident is pending or went through (not failed)."""
    query = select(func.count(ActionRow.id)).where(
        ActionRow.incident_id == incident_id,
        ActionRow.kind == "drain",
        ActionRow.status != ActionStatus.FAILED,
    )
    return bool(s.scalar(query))


def resolve(s: Session, row: IncidentRow, now: datetime) -> None:
    """Close the incident and cancel what is still pending for it."""
    row.status = RESOLVED
    row.resolved_at = now
    pending = select(ActionRow).where(
        ActionRow.incident_id == row.id, ActionRow.status == ActionStatus.PENDING
    )
    for action in s.scalars(pending):
        action.status = ActionStatus.SKIPPED
        action.error = "incident resolved before the action ran"
        action.done_at = now
    if row.shared is not None:
        shared.close_if_done(s, row.shared, now)  # the component's, once its last node's is


def awaiting_restart(s: Session, since: datetime) -> Sequence[IncidentJobRow]:
    """Jobs requeued since ``since`` not yet seen running again."""
    query = select(IncidentJobRow).where(
        IncidentJobRow.requeued_at >= since, IncidentJobRow.restarted_at.is_(None)
    )
    return s.scalars(query).all()


def incident_job(
    s: Session, incident_id: int, job_id: int, submit_time: datetime
) -> IncidentJobRow | None:
    query = select(IncidentJobRow).where(
        IncidentJobRow.incident_id == incident_id,
        IncidentJobRow.job_id == job_id,
        IncidentJobRow.submit_time == submit_time,
    )
    return s.scalars(query).first()


# --- actions ---
def add_step(
    s: Session,
    incident: IncidentRow,
    rung: Rung,
    why: str,
    now: datetime,
    *,
    passed: str | None = None,
) -> RecoveryStepRow:
    """A step of ``incident``'s recovery ladder, started ``now`` and running; with
    ``passed`` (its outcome), one that passed as it was taken (a marker: the burn-in
    gate, a reboot Slurm saw)."""
    step = RecoveryStepRow(incident=incident, rung=rung, why=why, started_at=now)
    if passed is not None:
        step.status, step.ended_at, step.outcome = "passed", now, passed
    s.add(step)
    return step


def add_action(
    s: Session,
    *,
    kind: ActionKind,
    target: str,
    why: str,
    now: datetime,
    incident: IncidentRow | None = None,
    requeue_jobs: bool = False,
    done: tuple[ActionStatus, str | None] | None = None,
    payload: dict[str, Any] | None = None,
    not_before: datetime | None = None,
) -> ActionRow:
    """A new action row: pending (from ``not_before``, default now), or
    ``done=(status, outcome)`` for one already run."""
    row = ActionRow(
        kind=kind,
        target=target,
        why=why,
        incident=incident,
        requeue_jobs=requeue_jobs,
        payload=payload,
        created_at=now,
        not_before=not_before or now,
        status=ActionStatus.PENDING,
        attempts=0,
    )
    if done is not None:
        row.status, row.outcome = done
        row.attempts, row.done_at = 1, now
    s.add(row)
    return row


def next_due_action(s: Session, now: datetime) -> ActionRow | None:
    """The oldest pending action whose back-off has passed."""
    query = select(ActionRow).where(
        ActionRow.status == ActionStatus.PENDING, ActionRow.not_before <= now
    )
    return s.scalars(query.order_by(ActionRow.id).limit(1)).first()


def next_due_time(s: Session) -> datetime | None:
    """When the earliest pending action becomes due."""
    query = select(func.min(ActionRow.not_before)).where(ActionRow.status == ActionStatus.PENDING)
    return s.scalar(query)
