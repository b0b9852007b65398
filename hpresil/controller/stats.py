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

The controller gets the same figures from the database's aggregates
(:mod:`hpresil.controller.mttf`), which build their rows with :func:`view`; this
module stays the definition (tests compare the two over random ledgers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
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
class Window:
    start: datetime
    end: datetime

    @classmethod
    def until(cls, now: datetime, since: datetime | None = None) -> Window:
        return cls(since or _EPOCH, now)

    def holds(self, t: datetime | None) -> bool:
        return t is not None and self.start <= t <= self.end


@dataclass(frozen=True)
class Tally:
    """A row's failures and repairs, the repairs' hours summed."""

    failures: int = 0
    repairs: int = 0
    repair_h: float = 0.0

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.failures + other.failures,
            self.repairs + other.repairs,
            self.repair_h + other.repair_h,
        )


def mttf(
    nodes: Sequence[NodeSpan],
    incidents: Sequence[IncidentSpan],
    *,
    now: datetime,
    by: By = "all",
    since: datetime | None = None,
) -> MttfView:
    window = Window.until(now, since)
    per_node = _group(incidents, lambda i: i.node)
    exposure = {n.name: exposure_h(n, per_node.get(n.name, []), window) for n in nodes}
    keyed: dict[str, list[IncidentSpan]] = {}
    if by == "node":
        keyed = {name: per_node.get(name, []) for name in exposure}
    elif by == "category":
        keyed = _group(_in(incidents, window), lambda i: i.category.value)
    tallies = {key: tally(group, window) for key, group in keyed.items()}
    return view(exposure, tallies, tally(incidents, window), by=by, window=window, since=since)


def view(
    exposure: Mapping[str, float],
    tallies: Mapping[str, Tally],
    total: Tally,
    *,
    by: By,
    window: Window,
    since: datetime | None,
) -> MttfView:
    """The view from each node's exposure (hours) and the tally of each row's key (a
    node, a category; none for ``by="all"``) and of the whole ledger."""
    fleet = sum(exposure.values())
    all_row = _row("all", len(exposure), fleet, total)
    if by == "node":
        rows = [_row(n, 1, exposure[n], tallies.get(n, Tally())) for n in sorted(exposure)]
    elif by == "category":
        rows = [_row(k, len(exposure), fleet, tallies[k]) for k in sorted(tallies)]
    else:
        rows = [all_row]
    return MttfView(by=by, since=since, until=window.end, rows=rows, total=all_row)


def exposure_h(node: NodeSpan, incidents: Iterable[IncidentSpan], window: Window) -> float:
    """Hours ``node`` was in service inside ``window``."""
    down = [(i.drained_at, i.resolved_at) for i in incidents if i.drained_at is not None]
    return spans_exposure_h(node.first_seen_at, down, window)


def spans_exposure_h(
    first_seen_at: datetime, down: Iterable[tuple[datetime, datetime | None]], window: Window
) -> float:
    """Hours in service inside ``window`` of a node first seen ``first_seen_at`` and
    out of service over ``down`` (drained, resolved or still out)."""
    lo, hi = max(first_seen_at, window.start), window.end
    if hi <= lo:
        return 0.0
    spans = [(drained, resolved or hi) for drained, resolved in down]
    return ((hi - lo).total_seconds() - _covered(spans, lo, hi)) / _HOUR


def summed_exposure_h(first_seen_at: datetime, down_s: float, window: Window) -> float:
    """Hours in service inside ``window`` of a node first seen ``first_seen_at`` and
    out of service ``down_s`` seconds of it (already clipped to the window, overlaps
    counted once)."""
    lo, hi = max(first_seen_at, window.start), window.end
    if hi <= lo:
        return 0.0
    return ((hi - lo).total_seconds() - down_s) / _HOUR


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


def tally(incidents: Iterable[IncidentSpan], window: Window) -> Tally:
    """Hardware failures detected in ``window``; repairs (drain to return to service)
    resolved in it."""
    incidents = list(incidents)
    failures = sum(1 for i in incidents if i.hardware and window.holds(i.detected_at))
    repairs = _repairs_h(incidents, window)
    return Tally(failures, len(repairs), sum(repairs))


def _row(key: str, nodes: int, exposure: float, tally: Tally) -> MttfRow:
    return MttfRow(
        key=key,
        nodes=nodes,
        exposure_h=exposure,
        failures=tally.failures,
        mttf_h=exposure / tally.failures if tally.failures else None,
        repairs=tally.repairs,
        mttr_h=tally.repair_h / tally.repairs if tally.repairs else None,
    )


def _repairs_h(incidents: Iterable[IncidentSpan], window: Window) -> list[float]:
    """Hours from drain to return to service, for incidents resolved in ``window``."""
    return [
        (i.resolved_at - i.drained_at).total_seconds() / _HOUR
        for i in incidents
        if i.drained_at is not None and i.resolved_at is not None and window.holds(i.resolved_at)
    ]


def _in(incidents: Iterable[IncidentSpan], window: Window) -> list[IncidentSpan]:
    """Incidents detected or repaired inside ``window``."""
    return [i for i in incidents if window.holds(i.detected_at) or _repairs_h([i], window)]


def _group(
    incidents: Iterable[IncidentSpan], key: Callable[[IncidentSpan], str]
) -> dict[str, list[IncidentSpan]]:
    out: dict[str, list[IncidentSpan]] = {}
    for incident in incidents:
        out.setdefault(key(incident), []).append(incident)
    return out
