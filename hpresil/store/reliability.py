"""The incident ledger summed by the database, for MTTF and MTTR at fleet size.

What :func:`hpresil.controller.stats.mttf` computes from every incident, as SQL
aggregates, so that a million incidents never cross into Python (:func:`summed`):
per node its failures, its repairs (with their seconds) and its downtime inside the
window; per category its incidents, failures and repairs.

A node's downtime is the union of its ``drained_at``..``resolved_at`` (``end`` while
open) intervals, clipped to ``[start, end]``. PostgreSQL joins them itself, over the
covering indexes of migration 0005: each interval minus the reach of those before it
(a window function). SQLite's window functions cost a microsecond or two a row, so
there the intervals are summed as if none overlapped (exact for a ledger hpresil
writes: one open incident per node, so one drain at a time) and the sum is proved:
the node's intervals, listed ``drained,resolved,drained,resolved,...``, must never go
back. A node whose list goes back (two overlap, or a repair before its drain) is
marked :attr:`NodeSums.exact` False, and so is one drained before it was first seen
(the window is cut there, not at ``start``); the caller reads their intervals back
(:func:`spans`) and joins them itself.

SQLite sums what it reads rather than what it works out. Migration 0007 indexes, with
each incident, what it adds when its times all lie in the window (:data:`FAILURE`, a
failure of the node; :data:`TOOK`, its repair in days, also its downtime), its
interval (:data:`PROOF`) and its latest and earliest times (:data:`HI`, :data:`LO`; an
open one ends at :data:`OPEN`); SQLite reads an indexed expression that a query spells
the same (these strings, literals and all) from the index. When the window holds every
node's life (no ``since``, or one before the first node), one pass sums those values
per node (and one per category), and the incidents not wholly in the window (still
open, after ``end``; and every incident of a node with one before ``start`` or
resolved before it was drained) are summed again with the window in place of what
they added. Otherwise only the incidents that reach into the window (``HI >= start``),
found per node in the index, are summed with the window: the others add nothing.

SQLite keeps times as text that sorts as time does: differences are ``julianday()``
days (to the millisecond); PostgreSQL subtracts timestamps into intervals.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    String,
    TextClause,
    and_,
    bindparam,
    func,
    literal,
    or_,
    select,
    text,
    type_coerce,
)
from sqlalchemy.orm import Session

from hpresil.store.models import IncidentRow, NodeRow
from hpresil.store.types import UtcDateTime
from hpresil.vocab import Category

NOT_HARDWARE = tuple(c.value for c in Category if not c.is_hardware)
CHUNK = 500  # names per IN list
_DAY_S = 86400.0
_JULIAN_EPOCH = 2440587.5  # julianday('1970-01-01')

# SQLite: the expressions migration 0007 indexes, spelled as there (change one: migrate)
OPEN = "'9999-12-31 23:59:59.999999'"  # where a drained interval still open ends
HI = f"max(detected_at, coalesce(drained_at, detected_at), coalesce(resolved_at, {OPEN}))"
LO = (
    "CASE WHEN resolved_at < drained_at THEN '' ELSE min(detected_at,"
    " coalesce(drained_at, detected_at), coalesce(resolved_at, detected_at)) END"
)
_NOT_HARDWARE = ", ".join(f"'{c}'" for c in NOT_HARDWARE)
FAILURE = f"category NOT IN ({_NOT_HARDWARE}) AND job_id IS NULL AND shared_id IS NULL"
TOOK = "julianday(resolved_at) - julianday(drained_at)"
PROOF = f"drained_at || ',' || coalesce(resolved_at, {OPEN})"
BY_NODE_IX = "ix_incidents_ledger"
BY_CATEGORY_IX = "ix_incidents_ledger_by_category"

_IN = "BETWEEN :start AND :end"
_WITH_WINDOW = (  # present, failures, repairs, repair days, down days
    f"count(*) FILTER (WHERE detected_at {_IN} OR drained_at IS NOT NULL AND resolved_at {_IN}),"
    f" sum(({FAILURE}) AND detected_at {_IN}),"
    f" count(CASE WHEN resolved_at {_IN} THEN {TOOK} END),"
    f" total(CASE WHEN resolved_at {_IN} THEN {TOOK} END),"
    " total(max(min(julianday(coalesce(resolved_at, :end)), :end_d)"
    " - max(julianday(drained_at), :start_d), 0.0))"
)
_WHOLLY_IN = f"count(*), sum({FAILURE}), count({TOOK}), total({TOOK}), total({TOOK})"

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


class NodeSums(NamedTuple):
    failures: int  # detected in the window
    repairs: Repairs  # resolved in the window
    down_s: float  # downtime in [start, end]
    first_drained: datetime | None  # None: never drained
    exact: bool  # down_s is the union; False: the intervals may overlap


class Summed(NamedTuple):
    nodes: dict[str, NodeSums]  # every stored node with incidents (the caller picks)
    categories: dict[str, CategoryTally]  # asked for: those with incidents in the window


def counted_nodes(s: Session) -> Counted:
    """The nodes MTTF counts: once Slurm has listed any, only those it listed (a node
    stored from reports alone, before names were checked, is no node)."""
    sqlite = _is_sqlite(s)
    seen = type_coerce(NodeRow.first_seen_at, String()) if sqlite else NodeRow.first_seen_at
    listed = _present(NodeRow.slurm_seen_at.expression, sqlite)
    rows = [
        (name, _utc(when) if sqlite else when, is_listed)
        for name, when, is_listed in s.execute(select(NodeRow.name, seen, listed))
    ]
    if not any(is_listed for *_, is_listed in rows):
        return Counted([(name, when) for name, when, _ in rows], [])
    counted = [(name, when) for name, when, is_listed in rows if is_listed]
    return Counted(counted, [name for name, _, is_listed in rows if not is_listed])


def summed(
    s: Session, start: datetime, end: datetime, counted: Counted, *, by_category: bool = False
) -> Summed:
    """Per stored node, its sums in ``[start, end]``; and, ``by_category``, each
    category's, without the incidents of ``counted.left_out``."""
    if _is_sqlite(s):
        return _summed_sqlite(s, _Window(start, end), counted, by_category)
    nodes = _drained_postgres(s, start, end)
    if by_category:  # the nodes left out: read apart and taken off
        categories = _categories(s, start, end, None)
        for chunk in _chunks(sorted(counted.left_out)):
            for key, sums in _categories(s, start, end, chunk).items():
                categories[key] = categories[key].plus(sums, -1)
        return Summed(nodes, _tallies(categories))
    c = IncidentRow.__table__.c
    query = select(c.node, func.count().filter(_failure(c, start, end))).group_by(c.node)
    zero = NodeSums(0, Repairs(0, 0.0), 0.0, None, True)
    for node, n in s.execute(query):
        nodes[node] = nodes.get(node, zero)._replace(failures=n)
    return Summed(nodes, {})


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


# --- SQLite ---
class _Window(NamedTuple):
    start: datetime
    end: datetime

    def bind(self, sql: str, **names: list[str]) -> TextClause:
        """``sql`` with those of its parameters it names: the window's times as stored
        (``start``, ``end``) and in days (``start_d``, ``end_d``), and lists of names."""
        ends = self._asdict().items()
        params = [bindparam(k, v, type_=UtcDateTime()) for k, v in ends]
        params += [bindparam(f"{k}_d", v.timestamp() / _DAY_S + _JULIAN_EPOCH) for k, v in ends]
        params += [bindparam(k, v, expanding=True) for k, v in names.items()]
        named = set(re.findall(r"(?<![:\w]):(\w+)", sql))
        return text(sql).bindparams(*[p for p in params if p.key in named])


class _Sums(NamedTuple):
    present: int
    failures: int
    repairs: int
    repair_d: float
    down_d: float

    def plus(self, o: _Sums, sign: int = 1) -> _Sums:
        n, f = self.present + sign * o.present, self.failures + sign * o.failures
        r, d = self.repairs + sign * o.repairs, self.repair_d + sign * o.repair_d
        return _Sums(n, f, r, d, self.down_d + sign * o.down_d)


_NONE = _Sums(0, 0, 0, 0.0, 0.0)
_Proved = tuple[_Sums, datetime | None, bool]  # a node's sums, first drain, and exact


def _summed_sqlite(s: Session, w: _Window, counted: Counted, by_category: bool) -> Summed:
    left_out = set(counted.left_out)
    if not all(w.start <= seen for _, seen in counted.nodes):
        return _reaching(s, w, left_out, by_category)
    nodes, again = _precomputed(s, w)  # the window holds every node's life
    again |= left_out if by_category else set()
    keys = ("node", "category")
    rows = [r for names in _chunks(sorted(again)) for r in _summed_rows(s, w, keys, names)]
    rows += [r for r in _summed_rows(s, w, keys, None, f"{HI} > :end") if r[0] not in again]
    for node, _, real, wholly, _ in rows:  # with the window, not as if wholly in it
        sums, first, exact = nodes[node]
        nodes[node] = (sums.plus(real).plus(wholly, -1), first, exact)
    out = {node: _node_sums(*v) for node, v in nodes.items()}
    if not by_category:
        return Summed(out, {})
    categories = _category_pass(s)
    for node, category, real, wholly, _ in rows:
        less = categories.get(category, _NONE).plus(wholly, -1)
        categories[category] = less if node in left_out else less.plus(real)
    return Summed(out, _tallies(categories))


def _reaching(s: Session, w: _Window, left_out: set[str], by_category: bool) -> Summed:
    """Sums of the incidents that reach into the window (the others add nothing)."""
    reach = f"{HI} >= :start"
    rows = _summed_rows(s, w, ("node",), None, reach)
    nodes = {node: _node_sums(real, *_proved(proof, False)) for node, real, _, proof in rows}
    if not by_category:
        return Summed(nodes, {})
    categories = {key: real for key, real, *_ in _summed_rows(s, w, ("category",), None, reach)}
    for names in _chunks(sorted(left_out)):
        for key, real, *_ in _summed_rows(s, w, ("category",), names, reach):
            categories[key] = categories[key].plus(real, -1)
    return Summed(nodes, _tallies(categories))


def _precomputed(s: Session, w: _Window) -> tuple[dict[str, _Proved], set[str]]:
    """Every node summed from the index as if its incidents lay wholly in the window,
    and the nodes with one from before ``start`` (or resolved before it was drained)."""
    sql = (
        f"SELECT node, sum({FAILURE}), count({TOOK}), total({TOOK}), min({LO}) < :start,"
        f" group_concat({PROOF}, ',') FROM incidents INDEXED BY {BY_NODE_IX} GROUP BY node"
    )
    nodes, early = {}, set()
    for node, failed, fixed, days, before, proof in s.execute(w.bind(sql)):
        nodes[node] = (_Sums(0, failed, fixed, days, days), *_proved(proof, True))
        if before:
            early.add(node)
    return nodes, early


def _summed_rows(
    s: Session, w: _Window, keys: tuple[str, ...], names: list[str] | None, reach: str = ""
) -> list[tuple[Any, ...]]:
    """``(*keys, with the window, as if wholly in it, intervals)`` of ``names``'
    incidents, or of all nodes' that ``reach`` picks (in each node's part of the index)."""
    group = ", ".join(keys)
    where = "node IN :names" if names is not None else "node IN (SELECT name FROM nodes)"
    sql = (
        f"SELECT {group}, {_WITH_WINDOW}, {_WHOLLY_IN}, group_concat({PROOF}, ',')"
        f" FROM incidents INDEXED BY {BY_NODE_IX}"
        f" WHERE {where}{f' AND {reach}' if reach else ''} GROUP BY {group}"
    )
    query = w.bind(sql, names=names) if names is not None else w.bind(sql)
    n = len(keys)
    return [
        (*r[:n], _Sums(*r[n : n + 5]), _Sums(*r[n + 5 : n + 10]), r[-1]) for r in s.execute(query)
    ]


def _category_pass(s: Session) -> dict[str, _Sums]:
    """Each category's incidents summed from its index as if wholly in the window."""
    sql = (
        f"SELECT category, {_WHOLLY_IN} FROM incidents INDEXED BY {BY_CATEGORY_IX}"
        " GROUP BY category"
    )
    return {category: _Sums(*sums) for category, *sums in s.execute(text(sql))}


def _tallies(categories: dict[str, _Sums]) -> dict[str, CategoryTally]:
    return {
        key: CategoryTally(t.present, t.failures, Repairs(t.repairs, t.repair_d * _DAY_S))
        for key, t in categories.items()
        if t.present > 0
    }


def _node_sums(sums: _Sums, first: datetime | None, exact: bool) -> NodeSums:
    repairs = Repairs(sums.repairs, sums.repair_d * _DAY_S)
    return NodeSums(sums.failures, repairs, sums.down_d * _DAY_S, first, exact)


def _proved(listed: str | None, ordered: bool) -> tuple[datetime | None, bool]:
    """The first drain of ``drained,resolved,drained,resolved,...`` (stored times: text
    that sorts as time does), and whether, ``ordered`` as listed or else by drain, it
    never goes back: then the intervals are disjoint."""
    if listed is None:
        return None, True
    times = listed.split(",")
    if not ordered:
        times = [t for pair in sorted(zip(times[::2], times[1::2], strict=True)) for t in pair]
    return _utc(times[0]), times == sorted(times)


def _utc(stored: str) -> datetime:
    """A time as SQLite keeps it (naive UTC text)."""
    return datetime.fromisoformat(f"{stored}+00:00")


# --- PostgreSQL ---
def _drained_postgres(s: Session, start: datetime, end: datetime) -> dict[str, NodeSums]:
    """Each interval counts what it adds beyond the reach of the node's earlier ones."""
    c = IncidentRow.__table__.c
    until = _end_or(c.resolved_at, end)
    reach = func.max(until).over(
        partition_by=c.node, order_by=(c.drained_at, c.resolved_at), rows=(None, -1)
    )
    rows = select(c.node, c.drained_at, c.resolved_at, reach.label("reach"))
    w = rows.where(c.drained_at.is_not(None)).subquery()
    fixed = w.c.resolved_at.between(start, end)
    begins = func.greatest(w.c.drained_at, func.coalesce(w.c.reach, w.c.drained_at))
    added = _clip(begins, _end_or(w.c.resolved_at, end), start, end)
    query = select(
        w.c.node,
        func.count().filter(fixed),
        _seconds(func.sum(w.c.resolved_at - w.c.drained_at).filter(fixed)),
        _seconds(func.sum(added)),
        func.min(w.c.drained_at),
    ).group_by(w.c.node)
    out = {}
    for node, n, took_s, down_s, first in s.execute(query):
        out[node] = NodeSums(0, Repairs(n, took_s or 0.0), down_s or 0.0, first, True)
    return out


def _categories(
    s: Session, start: datetime, end: datetime, nodes: list[str] | None
) -> dict[str, _Sums]:
    """Each category's incidents detected or repaired in the window (of ``nodes``)."""
    c = IncidentRow.__table__.c
    fixed = and_(c.drained_at.is_not(None), c.resolved_at.between(start, end))
    query = select(
        c.category,
        func.count(),
        func.count().filter(_failure(c, start, end)),
        func.count().filter(fixed),
        _seconds(func.sum(c.resolved_at - c.drained_at).filter(fixed)) / _DAY_S,
    ).where(or_(c.detected_at.between(start, end), fixed))
    if nodes is not None:
        query = query.where(c.node.in_(nodes))
    rows = s.execute(query.group_by(c.category))
    return {k.value: _Sums(n, f, r, days or 0.0, 0.0) for k, n, f, r, days in rows}


def _failure(c: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(
        c.category.not_in(NOT_HARDWARE),
        c.job_id.is_(None),
        c.shared_id.is_(None),
        c.detected_at.between(start, end),
    )


def _clip(begins: Col, ends: Col, start: datetime, end: datetime) -> Col:
    """The part of ``begins``..``ends`` inside ``[start, end]`` (none: zero)."""
    lo, hi = literal(start, UtcDateTime()), literal(end, UtcDateTime())
    return func.greatest(func.least(ends, hi) - func.greatest(begins, lo), literal(timedelta(0)))


def _seconds(summed: Col) -> Col:
    return func.date_part("epoch", summed)


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
