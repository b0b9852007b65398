"""``GET /v1/stats/mttf`` at fleet size: the figures of :func:`hpresil.controller.stats.mttf`
from the database's aggregates (:mod:`hpresil.store.reliability`) rather than from
every incident loaded into Python.

The database counts failures per node or category, sums repairs and each node's
downtime; the few nodes whose downtime it could not join exactly (intervals that may
overlap, a drain before the node was first seen) have their intervals read back and
joined as the pure function joins them. Rows are built by the same
:func:`hpresil.controller.stats.view`, so both paths mean the same thing
(tests/unit/controller/test_mttf_ledger.py compares them over random ledgers, on
SQLite and on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from hpresil.api import MttfView
from hpresil.controller import stats
from hpresil.store import Store, reliability
from hpresil.store.reliability import Drained

_HOUR = 3600.0


def from_ledger(
    store: Store, *, now: datetime, by: stats.By = "all", since: datetime | None = None
) -> MttfView:
    """One read transaction: every figure is of the same ledger."""
    window = stats.Window.until(now, since)
    with store.read() as s:
        counted = reliability.counted_nodes(s)
        drained = reliability.drained(s, window.start, window.end)
        exposure = _exposure(s, counted.nodes, drained, window)
        tallies = _tallies(s, by, window, counted.left_out)
    if by != "category":  # each node's failures: add its repairs
        tallies = {n: tallies.get(n, stats.Tally()) + _repairs(drained.get(n)) for n in exposure}
    total = sum(tallies.values(), stats.Tally())
    rows = tallies if by != "all" else {}
    return stats.view(exposure, rows, total, by=by, window=window, since=since)


def _tallies(
    s: Session, by: stats.By, window: stats.Window, left_out: list[str]
) -> dict[str, stats.Tally]:
    """Each category's tally (``by="category"``), else each node's failures."""
    start, end = window.start, window.end
    if by != "category":
        return {n: stats.Tally(f) for n, f in reliability.failures(s, start, end).items()}
    found = reliability.categories(s, start, end, left_out)
    return {
        key: stats.Tally(t.failures, t.repairs.number, t.repairs.seconds / _HOUR)
        for key, t in found.items()
    }


def _exposure(
    s: Session,
    nodes: list[tuple[str, datetime]],
    drained: Mapping[str, Drained],
    window: stats.Window,
) -> dict[str, float]:
    """Each node's hours in service: from the database's sum of its downtime, or from
    its intervals where that sum may not be the union."""
    exact = {name for name, first_seen in nodes if _rejoin(drained.get(name), first_seen)}
    spans = reliability.spans(s, exact) if exact else {}
    out = {}
    for name, first_seen in nodes:
        if name in exact:
            out[name] = stats.spans_exposure_h(first_seen, spans.get(name, []), window)
        else:
            down = drained[name].down_s if name in drained else 0.0
            out[name] = stats.summed_exposure_h(first_seen, down, window)
    return out


def _rejoin(drained: Drained | None, first_seen: datetime) -> bool:
    if drained is None:
        return False
    return not drained.exact or drained.first_drained < first_seen


def _repairs(drained: Drained | None) -> stats.Tally:
    if drained is None:
        return stats.Tally()
    return stats.Tally(0, drained.repairs.number, drained.repairs.seconds / _HOUR)
