"""What putting faults down to a shared component asks of the ledger: the open node
incidents of a category under a component, and the shared incidents. Reads and
writes in the caller's transaction."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from hpresil.store.models import IncidentRow, SharedFaultRow
from hpresil.vocab import Category

OPEN = "open"


def _failing(nodes: Collection[str], category: Category, since: datetime) -> list[Any]:
    return [
        IncidentRow.status == OPEN,
        IncidentRow.job_id.is_(None),
        IncidentRow.category == category,
        IncidentRow.detected_at >= since,
        IncidentRow.node.in_(sorted(nodes)),
    ]


def failing(s: Session, nodes: Collection[str], category: Category, since: datetime) -> set[str]:
    """Nodes of ``nodes`` with an open incident of ``category`` detected since ``since``."""
    query = select(IncidentRow.node).where(*_failing(nodes, category, since)).distinct()
    return set(s.scalars(query))


def attach(
    s: Session, row: SharedFaultRow, nodes: Collection[str], category: Category, since: datetime
) -> None:
    """Put the incidents :func:`failing` finds on ``nodes`` under ``row``, and those of
    the open shared incidents it takes over (one UPDATE each, no rows loaded)."""
    others = or_(IncidentRow.shared_id.is_(None), IncidentRow.shared_id != row.id)
    where = [*_failing(nodes, category, since), others]
    s.execute(update(IncidentRow).where(*where).values(shared_id=row.id))


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
