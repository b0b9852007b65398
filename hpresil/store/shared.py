"""What putting faults down to a shared component asks of the ledger: the open node
incidents of a category under a component, and the shared incidents. Reads and
writes in the caller's transaction."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from hpresil.store.models import IncidentRow, SharedFaultRow
from hpresil.vocab import Category

OPEN = "open"


def failing(
    s: Session, nodes: Collection[str], category: Category, since: datetime
) -> dict[int, str]:
    """The open node incidents of ``category`` on ``nodes`` detected since ``since``:
    id -> node. Looked up by node (a node has at most one open incident), so the cost
    is the component's size, not the number of open incidents of the category."""
    query = select(
        IncidentRow.id, IncidentRow.node, IncidentRow.category, IncidentRow.detected_at
    ).where(
        IncidentRow.node.in_(sorted(nodes)),
        IncidentRow.status == OPEN,
        IncidentRow.job_id.is_(None),
    )
    return {
        id_: node
        for id_, node, found, detected_at in s.execute(query)
        if found == category and detected_at >= since
    }


def attach(s: Session, row: SharedFaultRow, incidents: Collection[int]) -> None:
    """Put ``incidents`` under ``row`` (one UPDATE, no rows loaded)."""
    others = or_(IncidentRow.shared_id.is_(None), IncidentRow.shared_id != row.id)
    query = update(IncidentRow).where(IncidentRow.id.in_(sorted(incidents)), others)
    s.execute(query.values(shared_id=row.id))


def merge(s: Session, smaller: SharedFaultRow, into: SharedFaultRow, now: datetime) -> None:
    """``into`` takes over ``smaller``'s incidents; ``smaller`` is resolved as merged."""
    query = update(IncidentRow).where(IncidentRow.shared_id == smaller.id)
    s.execute(query.values(shared_id=into.id))
    smaller.merged_into, smaller.resolved_at = into.id, now


def open_faults(
    s: Session, category: Category, components: Collection[tuple[str, str]]
) -> Sequence[SharedFaultRow]:
    """Open shared incidents of ``category`` on ``components`` (kind, name), oldest first."""
    names = sorted({name for _, name in components})
    query = select(SharedFaultRow).where(
        SharedFaultRow.category == category,
        SharedFaultRow.resolved_at.is_(None),
        SharedFaultRow.component.in_(names),
    )
    found = s.scalars(query.order_by(SharedFaultRow.id)).all()
    return [row for row in found if (row.kind, row.component) in components]


def open_fault(
    s: Session,
    kind: str,
    component: str,
    category: Category,
    why: str,
    *,
    size: int,
    now: datetime,
) -> SharedFaultRow:
    """A new shared incident on ``component``, its nodes still to be attached."""
    row = SharedFaultRow(
        kind=kind,
        component=component,
        category=category,
        size=size,
        nodes=[],
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
