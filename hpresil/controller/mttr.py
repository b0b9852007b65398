"""``GET /v1/stats/mttr``: what each rung of the recovery ladder
(:mod:`hpresil.controller.recovery`) costs, and what it buys, over the incidents
detected in a window (``since``; by default the last :data:`DEFAULT_DAYS` days).

The ledger here is the incidents that took a node out of service (``drained_at`` set;
a job's incident never does), and the steps of their ladders:

* **per rung**: its steps, how they ended (passed, failed, stopped; or still running),
  and the time spent in it (``ended_at - started_at`` of the steps that ended);
* **per category** (and for all), each incident in exactly one of: *back* in service
  by the ladder (a passed ``resume`` step; MTTR from the incident's detection,
  ``detected_at`` on the controller's clock, to that step's end, and from its drain);
  else *replaced* (it climbed to the ``replace`` rung, however it ended later); else
  *by hand* (resolved without the ladder: an operator's ``hpresil resume``, or the
  node resumed in Slurm by someone else; MTTR from detection to ``resolved_at``); else
  still *open*;
* **cleared by**: for the incidents back in service, the rung that cleared the fault:
  the last ``reset_gpu`` or ``reboot`` step that passed before the passing burn-in
  (before the passing resume where no burn-in passed); none: the burn-in alone.

The database picks the window's incidents and joins their steps, in ladder order, in
one read; percentiles need every duration, so the rows come back rather than sums (a
window's drained incidents, not the whole ledger :mod:`hpresil.controller.mttf` sums).
The durations and their statistics are worked out by :func:`summary`, a pure function
over plain records (``statistics``: the median, the 95th percentile by the inclusive
method, the mean).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select

from hpresil.api import Durations, MttrCleared, MttrRow, MttrRung, MttrView
from hpresil.store import Store
from hpresil.store.models import IncidentRow, RecoveryStepRow, Rung, StepStatus
from hpresil.vocab import Category

DEFAULT_DAYS = 30
RUNGS: tuple[Rung, ...] = ("reset_gpu", "reboot", "burnin", "resume", "replace")
Remedy = Literal["reset_gpu", "reboot"]
_REMEDIES: dict[str, Remedy] = {"reset_gpu": "reset_gpu", "reboot": "reboot"}
Fate = Literal["back", "replaced", "by_hand", "open"]


@dataclass(frozen=True)
class Step:
    rung: Rung
    status: StepStatus
    started_at: datetime
    ended_at: datetime | None = None

    def passed(self, *rungs: Rung) -> bool:
        return self.status == "passed" and self.rung in rungs


@dataclass(frozen=True)
class Case:
    """An incident that took its node out of service, and its ladder's steps in order."""

    category: Category
    detected_at: datetime
    drained_at: datetime | None = None
    resolved_at: datetime | None = None
    steps: tuple[Step, ...] = ()

    @property
    def back_at(self) -> datetime | None:
        """When the ladder put the node back in service: its passed resume step's end."""
        return next((s.ended_at for s in self.steps if s.passed("resume")), None)

    @property
    def fate(self) -> Fate:
        if self.back_at is not None:
            return "back"
        if any(s.rung == "replace" for s in self.steps):
            return "replaced"
        return "by_hand" if self.resolved_at is not None else "open"

    @property
    def cleared_by(self) -> Remedy | None:
        """The last reset or reboot that passed before the passing burn-in (or resume
        where no burn-in passed); None: the burn-in alone."""
        burnin = next((i for i, s in enumerate(self.steps) if s.passed("burnin")), None)
        resume = next((i for i, s in enumerate(self.steps) if s.passed("resume")), None)
        anchor = burnin if burnin is not None else resume
        before = self.steps[:anchor] if anchor is not None else self.steps
        remedies = [_REMEDIES[s.rung] for s in before if s.passed("reset_gpu", "reboot")]
        return remedies[-1] if remedies else None


def from_ledger(store: Store, *, now: datetime, since: datetime | None = None) -> MttrView:
    """The incidents detected from ``since`` (default: :data:`DEFAULT_DAYS` days before
    ``now``) to ``now``, with their steps: one read transaction."""
    start = since if since is not None else now - timedelta(days=DEFAULT_DAYS)
    i, r = IncidentRow, RecoveryStepRow
    query = (
        select(i.id, i.category, i.detected_at, i.drained_at, i.resolved_at)
        .add_columns(r.rung, r.status, r.started_at, r.ended_at)
        .outerjoin(r, r.incident_id == i.id)
        .where(i.detected_at.between(start, now), i.drained_at.is_not(None))
        .order_by(i.id, r.id)
    )
    found: dict[int, tuple[Case, list[Step]]] = {}
    with store.read() as s:
        for row in s.execute(query):
            if row.id not in found:
                case = Case(row.category, row.detected_at, row.drained_at, row.resolved_at)
                found[row.id] = (case, [])
            if row.rung is not None:  # None: an incident without steps
                found[row.id][1].append(Step(row.rung, row.status, row.started_at, row.ended_at))
    cases = [replace(case, steps=tuple(steps)) for case, steps in found.values()]
    return summary(cases, since=start, until=now)


def summary(cases: Iterable[Case], *, since: datetime, until: datetime) -> MttrView:
    """The view of ``cases`` (the incidents detected in ``[since, until]``)."""
    cases = list(cases)
    categories = sorted({c.category for c in cases})
    steps = [s for c in cases for s in c.steps]
    return MttrView(
        since=since,
        until=until,
        rungs=[rung_row(rung, steps) for rung in RUNGS],
        categories=[row(k.value, [c for c in cases if c.category == k]) for k in categories],
        total=row("all", cases),
        cleared_by=[cleared(by, cases) for by in (*_REMEDIES.values(), None)],
    )


def rung_row(rung: Rung, steps: Iterable[Step]) -> MttrRung:
    mine = [s for s in steps if s.rung == rung]

    def counted(status: StepStatus) -> int:
        return sum(1 for s in mine if s.status == status)

    return MttrRung(
        rung=rung,
        steps=len(mine),
        passed=counted("passed"),
        failed=counted("failed"),
        stopped=counted("stopped"),
        running=counted("running"),
        took=durations((s.started_at, s.ended_at) for s in mine),
    )


def row(key: str, cases: Sequence[Case]) -> MttrRow:
    fates = {fate: [c for c in cases if c.fate == fate] for fate in _FATES}
    back, by_hand = fates["back"], fates["by_hand"]
    return MttrRow(
        key=key,
        incidents=len(cases),
        back=len(back),
        mttr=durations((c.detected_at, c.back_at) for c in back),
        mttr_from_drain=durations((c.drained_at, c.back_at) for c in back),
        by_hand=len(by_hand),
        by_hand_mttr=durations((c.detected_at, c.resolved_at) for c in by_hand),
        replaced=len(fates["replaced"]),
        open=len(fates["open"]),
    )


def cleared(by: Remedy | None, cases: Iterable[Case]) -> MttrCleared:
    mine = [c for c in cases if c.fate == "back" and c.cleared_by == by]
    mttr = durations((c.detected_at, c.back_at) for c in mine)
    return MttrCleared(rung=by, incidents=len(mine), mttr=mttr)


def durations(spans: Iterable[tuple[datetime | None, datetime | None]]) -> Durations:
    """The spans that began and ended, in seconds: how many, their median, their 95th
    percentile (inclusive: one value is its own) and their mean; None without any."""
    values = sorted((end - start).total_seconds() for start, end in spans if start and end)
    if not values:
        return Durations(n=0, p50_s=None, p95_s=None, mean_s=None)
    many = len(values) > 1
    p95 = statistics.quantiles(values, n=20, method="inclusive")[-1] if many else values[0]
    mean = statistics.fmean(values)
    return Durations(n=len(values), p50_s=statistics.median(values), p95_s=p95, mean_s=mean)


_FATES: tuple[Fate, ...] = ("back", "replaced", "by_hand", "open")
