"""The incident ledger summed by the database, for MTTF and MTTR at fleet size.

What :func:`hpresil.controller.stats.mttf` computes from every incident, as SQL
aggregates over two covering indexes (``ix_incidents_by_node``,
``ix_incidents_by_category``: migration 0005), so that a million incidents never cross
into Python: per node or per category the failures and the repairs (with their
seconds), and per node the downtime inside the window. Conditions are aggregate
filters rather than ``WHERE`` terms where a ``WHERE`` would lead SQLite's planner
(which has no statistics: hpresil never runs ``ANALYZE``) to a narrower index and a
read of every row.

A node's downtime is the union of its ``drained_at``..``resolved_at`` (``end`` while
open) intervals, clipped to ``[start, end]``. PostgreSQL joins them itself: each
interval minus the reach of those before it (a window function). SQLite's window
functions cost a microsecond or two a row, so there the intervals are summed as if
none overlapped (exact for a ledger hpresil writes: one open incident per node, so one
drain at a time) and the sum is proved: the node's intervals listed in index order
must read ``drained, resolved, drained, resolved, ...`` without going back. A node
whose list goes back (two overlap, or the rows came in another order) is marked
:attr:`Drained.exact` False, and so is one drained before it was first seen (the
window is cut there, not at ``start``); the caller reads their intervals back
(:func:`spans`) and joins them itself.

SQLite keeps times as text: differences are taken in ``julianday()`` days (to the
millisecond); PostgreSQL subtracts timestamps into intervals and converts a sum once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, String, and_, case, func, literal, or_, select, type_coerce
from sqlalchemy.orm import Session

from hpresil.store.models import IncidentRow, NodeRow
from hpresil.store.types import UtcDateTime
from hpresil.vocab import Category

NOT_HARDWARE = tuple(c.value for c in Category if not c.is_hardware)
CHUNK = 500  # names per IN list
_DAY_S = 86400.0
_JULIAN_EPOCH = 2440587.5  # julianday('1970-01-01')

Col = ColumnElement[Any]


class Counted(NamedTuple):
    nodes: list[tuple[str, datetime]]  # name, first seen
    left_out: list[str]  # stored nodes not counted: their incidents are left out too


class Repairs(NamedTuple):
    number: int
    seconds: float


class CategoryTally(NamedTuple):
    present: int  # incidents detected or repaired in the window
    failures: int
    repairs: Repairs

    def __sub__(self, other: CategoryTally) -> CategoryTally:
        fixed = Repairs(
            self.repairs.number - other.repairs.number,
            self.repairs.seconds - other.repairs.seconds,
        )
        return CategoryTally(self.present - other.present, self.failures - other.failures, fixed)


class Drained(NamedTuple):
    repairs: Repairs  # resolved in the window
    down_s: float  # downtime in [start, end]
    first_drained: datetime
    exact: bool  # down_s is the union; False: the intervals may overlap


def counted_nodes(s: Session) -> Counted:
    """The nodes MTTF counts: once Slurm has listed any, only those it listed (a node
    stored from reports alone, before names were checked, is no node)."""
    listed = _present(NodeRow.slurm_seen_at.expression, _is_sqlite(s))
    rows = s.execute(select(NodeRow.name, NodeRow.first_seen_at, listed)).all()
    if not any(is_listed for *_, is_listed in rows):
        return Counted([(name, seen) for name, seen, _ in rows], [])
    counted = [(name, seen) for name, seen, is_listed in rows if is_listed]
    return Counted(counted, [name for name, _, is_listed in rows if not is_listed])


def drained(s: Session, start: datetime, end: datetime) -> dict[str, Drained]:
    """Per node that was ever drained: its repairs in ``[start, end]`` and its downtime
    there (every stored node: the caller leaves out those it does not count)."""
    if _is_sqlite(s):
        return _drained_sqlite(s, start, end)
    return _drained_postgres(s, start, end)


def failures(s: Session, start: datetime, end: datetime) -> dict[str, int]:
    """Per node: hardware failures (neither a job's nor a shared component's) detected
    in ``[start, end]``."""
    c = IncidentRow.__table__.c
    query = select(c.node, func.count().filter(_failure(c, start, end))).group_by(c.node)
    return {node: n for node, n in s.execute(query)}


def categories(
    s: Session, start: datetime, end: datetime, left_out: Sequence[str] = ()
) -> dict[str, CategoryTally]:
    """Each category with incidents detected or repaired in ``[start, end]``: their
    count, its failures and its repairs (drain to return to service); incidents of
    ``left_out`` nodes do not count (read apart and taken off: a filter on the node
    would lose SQLite the index's order)."""
    out = _categories(s, start, end, None)
    for chunk in _chunks(sorted(left_out)):
        for key, tally in _categories(s, start, end, chunk).items():
            out[key] = out[key] - tally
    return {key: tally for key, tally in out.items() if tally.present > 0}


def spans(s: Session, nodes: Iterable[str]) -> dict[str, list[tuple[datetime, datetime | None]]]:
    """The drained intervals of ``nodes``, as stored."""
    out: dict[str, list[tuple[datetime, datetime | None]]] = {}
    for chunk in _chunks(sorted(nodes)):
        query = select(IncidentRow.node, IncidentRow.drained_at, IncidentRow.resolved_at).where(
            IncidentRow.node.in_(chunk), IncidentRow.drained_at.is_not(None)
        )
        for node, drained_at, resolved_at in s.execute(query):
            if drained_at is not None:  # as the query asks
                out.setdefault(node, []).append((drained_at, resolved_at))
    return out


def _drained_sqlite(s: Session, start: datetime, end: datetime) -> dict[str, Drained]:
    """Downtime is the repairs' time plus, for the few rows where the two differ (still
    open, cut by the window, resolved before drained), the difference."""
    c, t = IncidentRow.__table__.c, _Times(True)
    fixed = c.resolved_at.between(start, end)
    took = t.at(c.resolved_at) - t.at(c.drained_at)
    normal = and_(
        c.resolved_at.is_not(None), fixed, c.drained_at >= start, c.resolved_at >= c.drained_at
    )
    odd = and_(~normal, _end_or(c.resolved_at, end) >= start)
    counted = case((fixed, took), else_=0.0)
    pair = _text(c.drained_at) + "," + _text(_end_or(c.resolved_at, end))
    listing = func.group_concat(pair, ",")
    query = select(
        c.node,
        func.count().filter(fixed),
        func.sum(took).filter(fixed),
        func.sum(_clipped(c, t, start, end) - counted).filter(odd),
        func.min(c.drained_at),
        listing,
    ).where(c.drained_at.is_not(None))
    out = {}
    for node, n, took_d, odd_d, first, listed in s.execute(query.group_by(c.node)):
        repairs = Repairs(n, (took_d or 0.0) * _DAY_S)
        down = repairs.seconds + (odd_d or 0.0) * _DAY_S
        out[node] = Drained(repairs, down, first, _in_order(listed))
    return out


def _drained_postgres(s: Session, start: datetime, end: datetime) -> dict[str, Drained]:
    """Each interval counts what it adds beyond the reach of the node's earlier ones."""
    c, t = IncidentRow.__table__.c, _Times(False)
    until = _end_or(c.resolved_at, end)
    reach = func.max(until).over(
        partition_by=c.node, order_by=(c.drained_at, c.resolved_at), rows=(None, -1)
    )
    rows = select(c.node, c.drained_at, c.resolved_at, reach.label("reach"))
    w = rows.where(c.drained_at.is_not(None)).subquery()
    fixed = w.c.resolved_at.between(start, end)
    begins = t.greatest(w.c.drained_at, func.coalesce(w.c.reach, w.c.drained_at))
    added = _clip(t, begins, _end_or(w.c.resolved_at, end), start, end)
    query = select(
        w.c.node,
        func.count().filter(fixed),
        t.seconds(func.sum(w.c.resolved_at - w.c.drained_at).filter(fixed)),
        t.seconds(func.sum(added)),
        func.min(w.c.drained_at),
    ).group_by(w.c.node)
    out = {}
    for node, n, took_s, down_s, first in s.execute(query):
        out[node] = Drained(Repairs(n, took_s or 0.0), down_s or 0.0, first, True)
    return out


def _categories(
    s: Session, start: datetime, end: datetime, nodes: list[str] | None
) -> dict[str, CategoryTally]:
    c, t = IncidentRow.__table__.c, _Times(_is_sqlite(s))
    fixed = _repaired(c, start, end)
    query = select(
        c.category,
        func.count(),
        func.count().filter(_failure(c, start, end)),
        func.count().filter(fixed),
        t.seconds(func.sum(t.at(c.resolved_at) - t.at(c.drained_at)).filter(fixed)),
    ).where(or_(c.detected_at.between(start, end), fixed))
    if nodes is not None:
        query = query.where(c.node.in_(nodes))
    rows = s.execute(query.group_by(c.category))
    return {k.value: CategoryTally(n, f, Repairs(r, secs or 0.0)) for k, n, f, r, secs in rows}


def _failure(c: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(
        c.category.not_in(NOT_HARDWARE),
        c.job_id.is_(None),
        c.shared_id.is_(None),
        c.detected_at.between(start, end),
    )


def _in_order(listed: str) -> bool:
    """Whether ``drained,resolved,drained,resolved,...`` (stored times: text that sorts
    as time does) never goes back: then the intervals are disjoint."""
    times = listed.split(",")
    return times == sorted(times)


def _clipped(c: Any, t: _Times, start: datetime, end: datetime) -> Col:
    """The part of the row's downtime inside ``[start, end]`` (none: zero)."""
    return _clip(t, t.at(c.drained_at), t.at(_end_or(c.resolved_at, end)), start, end)


def _clip(t: _Times, begins: Col, ends: Col, start: datetime, end: datetime) -> Col:
    lo, hi = t.const(start), t.const(end)
    return t.greatest(t.least(ends, hi) - t.greatest(begins, lo), t.zero())


def _text(column: Col) -> Col:
    return type_coerce(column, String())


def _repaired(c: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(c.drained_at.is_not(None), c.resolved_at.between(start, end))


def _end_or(resolved: Col, end: datetime) -> Col:
    return func.coalesce(resolved, literal(end, UtcDateTime()))


def _present(column: Col, sqlite: bool) -> Col:
    """Whether ``column`` holds a value. SQLite: its type, read from the row's header,
    so the value itself (past the node's results, in overflow pages) is not read."""
    return func.typeof(column) != "null" if sqlite else column.is_not(None)


def _is_sqlite(s: Session) -> bool:
    return s.get_bind().dialect.name == "sqlite"


def _chunks(names: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(names), CHUNK):
        yield names[i : i + CHUNK]


@dataclass(frozen=True)
class _Times:
    """Time arithmetic in the database's terms: SQLite in days (``julianday``),
    PostgreSQL in timestamps and intervals."""

    sqlite: bool

    def at(self, column: Col) -> Col:
        return func.julianday(column) if self.sqlite else column

    def const(self, when: datetime) -> Col:
        if self.sqlite:
            return literal(when.astimezone(UTC).timestamp() / _DAY_S + _JULIAN_EPOCH)
        return literal(when, UtcDateTime())

    def zero(self) -> Col:
        return literal(0.0) if self.sqlite else literal(timedelta(0))

    def greatest(self, a: Col, b: Col) -> Col:
        return func.max(a, b) if self.sqlite else func.greatest(a, b)

    def least(self, a: Col, b: Col) -> Col:
        return func.min(a, b) if self.sqlite else func.least(a, b)

    def seconds(self, summed: Col) -> Col:
        """A sum of differences, in seconds."""
        return summed * _DAY_S if self.sqlite else func.date_part("epoch", summed)
