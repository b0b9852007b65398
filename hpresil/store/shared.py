"""What putting faults down to a shared component asks of the ledger: the open node
incidents of a category under a component, and the shared incidents. Reads and
writes in the caller's transaction."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hpresil.store.models import IncidentRow, SharedFaultRow
from hpresil.vocab import Category

OPEN = "open"


def failing(
    s: Session, nodes: Collection[str], category: Category, since: datetime
) -> Sequence[IncidentRow]:
    """Open node incidents of ``category`` on ``nodes`` detected since ``since``."""
    query = select(IncidentRow).where(
        IncidentRow.status == OPEN,
        IncidentRow.job_id.is_(None),
        IncidentRow.category == category,
        IncidentRow.detected_at >= since,
        IncidentRow.node.in_(sorted(nodes)),
    )
    return s.scalars(query.order_by(IncidentRow.id)).all()


def open_faults(s: Session, category: Category) -> Sequence[SharedFaultRow]:
    """Open shared incidents of ``category``, oldest first."""
    query = select(SharedFaultRow).where(
        SharedFaultRow.category == category, SharedFaultRow.resolved_at.is_(None)
    )
    return s.scalars(query.order_by(SharedFaultRow.id)).all()


def open_fault(
    s: Session,
    kind: str,
    component: str,
    category: Category,
    nodes: list[str],
    why: str,
    *,
    size: int,
    now: datetime,
) -> SharedFaultRow:
    row = SharedFaultRow(
        kind=kind,
        component=component,
        category=category,
        size=size,
        nodes=nodes,
        why=why,
        opened_at=now,
    )
    s.add(row)
    s.flush()
    return row


def faults(s: Session, status: str = "all") -> Sequence[SharedFaultRow]:
    """Shared incidents, newest first; ``status``: open, resolved or all."""
    query = select(SharedFaultRow).order_by(SharedFaultRow.id.desc())
    if status == "open":
        query = query.where(SharedFaultRow.resolved_at.is_(None))
    elif status == "resolved":
        query = query.where(SharedFaultRow.resolved_at.is_not(None))
    return s.scalars(query).all()


def close_if_done(s: Session, row: SharedFaultRow, now: datetime) -> bool:
    """Resolve ``row`` once none of its node incidents is open; answers whether it is."""
    if row.resolved_at is None and all(i.status != OPEN for i in row.incidents):
        row.resolved_at = now
    return row.resolved_at is not None
