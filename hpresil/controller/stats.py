"""Mean time to failure and to repair, over plain inputs. Pure: ``now`` is given.

* A node's *exposure* is the time it was in service inside the window: from when
  hpresil first saw it (or the window's start) to ``now``, minus its downtime
  (each incident's ``drained_at`` to ``resolved_at``, or to ``now`` while open,
  whatever the category; overlapping downtime counts once).
* A *failure* is a hardware incident (``Category.is_hardware``) detected in the
  window, neither a job's nor put down to a shared component (a switch, rack or
  power domain: :mod:`hpresil.controller.shared`); the downtime still counts.
  MTTF = exposure / failures, ``None`` without failures. Estimates are
  censored: nodes that never failed still add their exposure.
* A *repair* is an incident that was drained and resolved (resolved in the
  window); MTTR is the mean of ``resolved_at - drained_at``.
* ``by="category"``: every row has the whole fleet's exposure, and the failures
  and repairs of its category.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from hpresil.api import MttfRow, MttfView
from hpresil.vocab import Category

By = Literal["all", "node", "category"]
_HOUR = 3600.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class NodeSpan:
    name: str
    first_seen_at: datetime


@dataclass(frozen=True)
class IncidentSpan:
    node: str
    category: Category
    detected_at: datetime
    drained_at: datetime | None = None
    resolved_at: datetime | None = None
    job: bool = False  # a job's incident (a hang, a fault blamed on the job): never the node's
    shared: bool = False  # put down to a switch, rack or power domain: not the node's either

    @property
    def hardware(self) -> bool:
        return self.category.is_hardware and not self.job and not self.shared


@dataclass(frozen=True)
class _Window:
    start: datetime
    end: datetime

    def holds(self, t: datetime | None) -> bool:
        return t is not None and self.start <= t <= self.end


def mttf(
    nodes: Sequence[NodeSpan],
    incidents: Sequence[IncidentSpan],
    *,
    now: datetime,
    by: By = "all",
    since: datetime | None = None,
) -> MttfView:
    window = _Window(since or _EPOCH, now)
    per_node = _group(incidents, lambda i: i.node)
    exposure = {n.name: exposure_h(n, per_node.get(n.name, []), window) for n in nodes}
    total = _row("all", len(nodes), sum(exposure.values()), incidents, window)
    if by == "node":
        rows = [
            _row(name, 1, exposure[name], per_node.get(name, []), window)
            for name in sorted(exposure)
        ]
    elif by == "category":
        per_category = _group(_in(incidents, window), lambda i: i.category.value)
        rows = [
            _row(key, len(nodes), total.exposure_h, per_category[key], window)
            for key in sorted(per_category)
        ]
    else:
        rows = [total]
    return MttfView(by=by, since=since, until=now, rows=rows, total=total)


def exposure_h(node: NodeSpan, incidents: Iterable[IncidentSpan], window: _Window) -> float:
    """Hours ``node`` was in service inside ``window``."""
    lo, hi = max(node.first_seen_at, window.start), window.end
    if hi <= lo:
        return 0.0
    down = [(i.drained_at, i.resolved_at or hi) for i in incidents if i.drained_at is not None]
    return ((hi - lo).total_seconds() - _covered(down, lo, hi)) / _HOUR


def _covered(spans: Iterable[tuple[datetime, datetime]], lo: datetime, hi: datetime) -> float:
    """Seconds of [lo, hi] covered by the union of ``spans``."""
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in spans)
    total, reach = 0.0, lo
    for a, b in clipped:
        start = max(a, reach)
        if b > start:
            total += (b - start).total_seconds()
            reach = b
    return total


def _row(
    key: str, nodes: int, exposure: float, incidents: Sequence[IncidentSpan], window: _Window
) -> MttfRow:
    failures = sum(1 for i in incidents if i.hardware and window.holds(i.detected_at))
    repairs = _repairs_h(incidents, window)
    return MttfRow(
        key=key,
        nodes=nodes,
        exposure_h=exposure,
        failures=failures,
        mttf_h=exposure / failures if failures else None,
        repairs=len(repairs),
        mttr_h=sum(repairs) / len(repairs) if repairs else None,
    )


def _repairs_h(incidents: Iterable[IncidentSpan], window: _Window) -> list[float]:
    """Hours from drain to return to service, for incidents resolved in ``window``."""
    return [
        (i.resolved_at - i.drained_at).total_seconds() / _HOUR
        for i in incidents
        if i.drained_at is not None and i.resolved_at is not None and window.holds(i.resolved_at)
    ]


def _in(incidents: Iterable[IncidentSpan], window: _Window) -> list[IncidentSpan]:
    """Incidents detected or repaired inside ``window``."""
    return [i for i in incidents if window.holds(i.detected_at) or _repairs_h([i], window)]


def _group(
    incidents: Iterable[IncidentSpan], key: Callable[[IncidentSpan], str]
) -> dict[str, list[IncidentSpan]]:
    out: dict[str, list[IncidentSpan]] = {}
    for incident in incidents:
        out.setdefault(key(incident), []).append(incident)
    return out
