"""What the blast-radius limits ask of the ledger: how many nodes are out because of
hpresil, how many nodes a category hit lately, how big the fleet is, and the
breakers. Reads and writes in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hpresil.store.models import ActionRow, BreakerRow, IncidentRow, NodeRow, SharedFaultRow
from hpresil.vocab import Category
from hpresil.vocab.actions import ActionStatus

OPEN = "open"
_TAKEN_OUT = (ActionStatus.PENDING, ActionStatus.DONE)  # drains queued or done


def nodes_out(s: Session) -> set[str]:
    """Nodes out of service because of hpresil: an open node incident whose drain is
    queued or done (the ledger, not Slurm: a queued drain counts at once)."""
    query = (
        select(IncidentRow.node)
        .join(ActionRow, ActionRow.incident_id == IncidentRow.id)
        .where(
            IncidentRow.status == OPEN,
            IncidentRow.job_id.is_(None),
            ActionRow.kind == "drain",
            ActionRow.status.in_(_TAKEN_OUT),
        )
        .distinct()
    )
    return set(s.scalars(query))


def nodes_hit(s: Session, category: Category, since: datetime) -> dict[str, str | None]:
    """Nodes with an incident of ``category`` detected since ``since``, each with the
    shared component it is put down to (``"switch leaf1"``), if any."""
    query = (
        select(IncidentRow.node, SharedFaultRow.kind, SharedFaultRow.component)
        .outerjoin(SharedFaultRow, IncidentRow.shared_id == SharedFaultRow.id)
        .where(
            IncidentRow.category == category,
            IncidentRow.job_id.is_(None),
            IncidentRow.detected_at >= since,
        )
        .distinct()
    )
    hit: dict[str, str | None] = {}
    for node, kind, component in s.execute(query):
        if hit.get(node) is None:
            hit[node] = None if kind is None else f"{kind} {component}"
    return hit


def fleet_size(s: Session) -> int:
    """Nodes hpresil knows: every node Slurm lists (reconcile records each, at start
    and every pass) and every node that reported (only names Slurm knows are taken)."""
    return int(s.scalar(select(func.count()).select_from(NodeRow)) or 0)


def tripped(s: Session, category: Category) -> BreakerRow | None:
    """The breaker of ``category`` while it is tripped (not reset)."""
    query = select(BreakerRow).where(BreakerRow.category == category, BreakerRow.reset_at.is_(None))
    return s.scalars(query.order_by(BreakerRow.id.desc())).first()


def trip(s: Session, category: Category, nodes: set[str], why: str, now: datetime) -> BreakerRow:
    row = BreakerRow(category=category, tripped_at=now, nodes=sorted(nodes), why=why, held_back=0)
    s.add(row)
    s.flush()
    return row


def breakers(s: Session, *, tripped_only: bool = False) -> Sequence[BreakerRow]:
    """Breakers, newest first."""
    query = select(BreakerRow).order_by(BreakerRow.id.desc())
    if tripped_only:
        query = query.where(BreakerRow.reset_at.is_(None))
    return s.scalars(query).all()


def reset(s: Session, category: Category, by: str, now: datetime) -> BreakerRow | None:
    """Reset the tripped breaker of ``category``; None when none is tripped."""
    row = tripped(s, category)
    if row is not None:
        row.reset_at, row.reset_by = now, by
    return row


def held_back_since(s: Session, outcome: str, since: datetime) -> int:
    """Drains held back with ``outcome`` since ``since`` (to alert once, not per drain)."""
    query = (
        select(func.count())
        .select_from(ActionRow)
        .where(
            ActionRow.kind == "drain", ActionRow.outcome == outcome, ActionRow.created_at >= since
        )
    )
    return int(s.scalar(query) or 0)
