"""Queries over the job ledger (``jobs``, ``job_interruptions``), inside a caller's session."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from hpresil.store.models import IncidentJobRow, IncidentRow, JobInterruptionRow, JobRow


def active_job(s: Session, job_id: int) -> JobRow | None:
    """The ledger row of the job with this id that has not ended (ids are reused
    only after Slurm's state is wiped, by which time the old row has ended)."""
    query = select(JobRow).where(JobRow.job_id == job_id, JobRow.ended_at.is_(None))
    return s.scalars(query.order_by(JobRow.id.desc())).first()


def ensure_job(s: Session, job_id: int, submit_time: datetime, now: datetime) -> JobRow:
    """The active row for ``job_id``, created (first seen ``now``) if there is none."""
    row = active_job(s, job_id)
    if row is None:
        row = JobRow(
            job_id=job_id,
            submit_time=submit_time,
            name="",
            user="",
            protected=False,
            state="",
            nodes="",
            restarts=0,
            gpus=0,
            first_seen_at=now,
            last_seen_at=now,
        )
        s.add(row)
        s.flush()
    return row


def active_jobs(s: Session) -> Sequence[JobRow]:
    return s.scalars(select(JobRow).where(JobRow.ended_at.is_(None)).order_by(JobRow.id)).all()


def jobs(s: Session, *, ended: bool = False) -> Sequence[JobRow]:
    """Ledger rows, oldest first, with their interruptions; ``ended`` includes finished ones."""
    query = select(JobRow).options(selectinload(JobRow.interruptions))
    if not ended:
        query = query.where(JobRow.ended_at.is_(None))
    return s.scalars(query.order_by(JobRow.id)).all()


def open_interruption(row: JobRow) -> JobInterruptionRow | None:
    """The job's latest interruption it has not yet resumed from."""
    pending = [i for i in row.interruptions if i.resumed_at is None]
    return pending[-1] if pending else None


def failure_nodes(
    s: Session, job_id: int, *, category: str, xid: int | None, since: datetime
) -> set[str]:
    """Nodes where this job was running when an incident of the same kind (category
    and XID) was detected there since ``since``: the evidence for blaming the job."""
    query = (
        select(IncidentRow.node)
        .join(IncidentJobRow, IncidentJobRow.incident_id == IncidentRow.id)
        .where(
            IncidentJobRow.job_id == job_id,
            IncidentRow.category == category,
            IncidentRow.detected_at >= since,
        )
    )
    query = query.where(IncidentRow.xid.is_(None) if xid is None else IncidentRow.xid == xid)
    return set(s.scalars(query))


def suspect_nodes(s: Session, since: datetime) -> set[str]:
    """Nodes with an open hardware incident, or one detected since ``since``."""
    query = select(IncidentRow.node).where(
        IncidentRow.hardware.is_(True),
        IncidentRow.job_id.is_(None),
        (IncidentRow.status == "open") | (IncidentRow.detected_at >= since),
    )
    return set(s.scalars(query))


def open_job_incidents(s: Session, job_id: int) -> Sequence[IncidentRow]:
    query = select(IncidentRow).where(IncidentRow.job_id == job_id, IncidentRow.status == "open")
    return s.scalars(query).all()
