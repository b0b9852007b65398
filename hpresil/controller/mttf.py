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
from hpresil.store.reliability import NodeSums

_HOUR = 3600.0


def from_ledger(
    store: Store, *, now: datetime, by: stats.By = "all", since: datetime | None = None
) -> MttfView:
    """One read transaction: every figure is of the same ledger."""
    window = stats.Window.until(now, since)
    with store.read() as s:
        counted = reliability.counted_nodes(s)
        found = reliability.summed(
            s, window.start, window.end, counted, by_category=by == "category"
        )
        exposure = _exposure(s, counted.nodes, found.nodes, window)
    if by == "category":
        tallies = {
            key: stats.Tally(t.failures, t.repairs.number, t.repairs.seconds / _HOUR)
            for key, t in found.categories.items()
        }
    else:  # each counted node's failures and repairs
        tallies = {n: _tally(found.nodes.get(n)) for n in exposure}
    total = sum(tallies.values(), stats.Tally())
    rows = tallies if by != "all" else {}
    return stats.view(exposure, rows, total, by=by, window=window, since=since)


def _exposure(
    s: Session,
    nodes: list[tuple[str, datetime]],
    summed: Mapping[str, NodeSums],
    window: stats.Window,
) -> dict[str, float]:
    """Each node's hours in service: from the database's sum of its downtime, or from
    its intervals where that sum may not be the union."""
    exact = {name for name, first_seen in nodes if _rejoin(summed.get(name), first_seen)}
    spans = reliability.spans(s, exact) if exact else {}
    out = {}
    for name, first_seen in nodes:
        if name in exact:
            out[name] = stats.spans_exposure_h(first_seen, spans.get(name, []), window)
        else:
            down = summed[name].down_s if name in summed else 0.0
            out[name] = stats.summed_exposure_h(first_seen, down, window)
    return out


def _rejoin(sums: NodeSums | None, first_seen: datetime) -> bool:
    if sums is None:
        return False
    if not sums.exact:
        return True
    return sums.first_drained is not None and sums.first_drained < first_seen


def _tally(sums: NodeSums | None) -> stats.Tally:
    if sums is None:
        return stats.Tally()
    return stats.Tally(sums.failures, sums.repairs.number, sums.repairs.seconds / _HOUR)
