"""The replay's memory (:mod:`hpresil.controller.replay`): what hpresil's database
answers ingest and the limits, answered for a replayed policy: the open incident of
each node and its drains, the nodes out, the breakers tripped, the incidents that count
for escalation and for the breaker; and what the stored history says besides the
reports (:class:`History`: nodes back in service, operators' drains, breaker resets,
jobs blamed, the fleet).

The limits are :mod:`hpresil.controller.limits`' on this memory, in the same order;
a replay with the configuration hpresil ran with shows no difference, which keeps the
two in step (tests/unit/controller/test_replay.py).
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from hpresil.config import PolicyConfig
from hpresil.controller import limits, policy
from hpresil.controller.policy import IncidentIdentity, OpenIncident
from hpresil.store.models import BreakerRow, IncidentRow
from hpresil.vocab import Action, Category, GpuIdentity, Report
from hpresil.vocab.actions import ActionStatus, DrainOutcome

POLICY_WHY = "; policy: "  # in the why of every drain the policy decided (policy.explain)
HELD: frozenset[str] = frozenset(get_args(limits.HeldBy))  # outcomes of a held-back drain
_TAKEN_OUT = (ActionStatus.PENDING, ActionStatus.DONE)


@dataclass(frozen=True)
class Outcome:
    """What one side did of an episode: drained the node (now or once the cap had
    room), or held its drain back (the last limit that did), and requeued its jobs."""

    drained: bool = False
    held_by: str | None = None  # never drained: the limit that held the last drain
    requeued: bool = False

    def text(self) -> str:
        what = (
            "drained"
            if self.drained
            else f"held back ({self.held_by})"
            if self.held_by
            else "no drain"
        )
        return what + (", jobs requeued" if self.requeued else "")


NOTHING = Outcome()


@dataclass(eq=False)
class Incident:
    """An incident as the replay keeps it: its identity, and its drains."""

    seq: int  # creation order: the oldest first, as reconcile queues held-back drains
    node: str
    detected_at: datetime
    category: Category
    action: Action = Action.NONE
    hardware: bool = False
    summary: str = ""
    gpu: tuple[str | None, str | None, int | None] = (None, None, None)  # serial, uuid, index
    stored_id: int | None = None  # hpresil's incident for the same episode
    job: bool = False  # a job's incident: counts for escalation only
    drain_queued: bool = False  # a drain recorded (done, queued or held back)
    out: bool = False  # a drain queued or done: the node out of service
    last_held: str | None = None  # the last drain's limit, when it was held back
    held_requeue: bool = False  # that held drain would requeue the jobs
    outcome: Outcome = NOTHING
    jobs: tuple[int, ...] = ()

    def summary_for_policy(self) -> OpenIncident:
        return OpenIncident(
            self.seq, self.category, self.action, self.hardware, drain_queued=self.drain_queued
        )

    def index_keys(self) -> Iterator[tuple[Any, ...]]:
        """The buckets :meth:`Ledger.earlier` looks this incident up in."""
        serial, uuid, index = self.gpu
        if serial:
            yield ("serial", self.category, serial)
        if uuid:
            yield ("uuid", self.category, uuid)
        yield ("node", self.category, self.node)
        if index is not None:
            yield ("gpu", self.category, self.node, index)


def _gpu_key(gpu: GpuIdentity | None) -> tuple[str | None, str | None, int | None]:
    return (gpu.serial, gpu.uuid, gpu.index) if gpu else (None, None, None)


@dataclass(frozen=True)
class Event:
    """Something the stored history says happened at ``at``, besides the reports."""

    at: datetime
    order: int  # among events at the same time: a node's return first, a job's last
    kind: Literal["back", "reset", "operator", "job"]
    node: str = ""
    category: Category | None = None
    done: bool = False  # an operator's drain that Slurm did
    foreign: bool = False  # an operator's drain of a node someone else had drained
    incident: IncidentRow | None = None  # a job's incident


@dataclass
class History:
    """What the stored history says besides the reports, for one replay."""

    since: datetime
    events: list[Event]
    seeds: list[IncidentRow]  # incidents open when the replay starts
    past: list[IncidentRow]  # earlier incidents that still count (escalation, breaker)
    tripped: set[Category]  # breakers tripped when the replay starts
    blamed: set[tuple[str, datetime]]  # (node, time) of a fault blamed on a job
    first_seen: list[datetime]  # the fleet over time
    stored: dict[int, IncidentRow]  # hpresil's node incidents, by id
    by_node: dict[str, list[IncidentRow]]  # the same per node, oldest first

    def shared(self, stored_id: int | None) -> str | None:
        """The component hpresil put a stored incident down to (``"switch leaf1"``):
        the topology is not replayed, its attribution is taken as stored."""
        row = self.stored.get(stored_id) if stored_id is not None else None
        common = row.shared if row is not None else None
        return None if common is None else common.label

    @classmethod
    def of(
        cls,
        incidents: Sequence[IncidentRow],
        breakers: Sequence[BreakerRow],
        first_seen: list[datetime],
        since: datetime,
    ) -> History:
        events: list[Event] = []
        seeds: list[IncidentRow] = []
        past: list[IncidentRow] = []
        blamed: set[tuple[str, datetime]] = set()
        stored: dict[int, IncidentRow] = {}
        by_node: dict[str, list[IncidentRow]] = defaultdict(list)
        for row in incidents:
            if row.job_id is not None:
                if row.detected_at < since:
                    past.append(row)
                    continue
                events.append(Event(row.detected_at, 2, "job", row.node, incident=row))
                if row.category is not Category.JOB_HANG:
                    blamed.add((row.node, row.detected_at))
                continue
            stored[row.id] = row
            by_node[row.node].append(row)
            if row.resolved_at is not None and row.resolved_at >= since:
                events.append(Event(row.resolved_at, 0, "back", row.node))
            if row.detected_at < since:
                open_then = row.resolved_at is None or row.resolved_at >= since
                (seeds if open_then else past).append(row)
            for a in row.actions:
                if a.kind == "drain" and a.created_at >= since and POLICY_WHY not in a.why:
                    events.append(
                        Event(
                            a.created_at,
                            1,
                            "operator",
                            row.node,
                            done=a.status is ActionStatus.DONE,
                            foreign=a.outcome == DrainOutcome.FOREIGN,
                        )
                    )
        tripped = set()
        for b in breakers:
            if b.tripped_at < since and (b.reset_at is None or b.reset_at >= since):
                tripped.add(b.category)
            if b.reset_at is not None and b.reset_at >= since:
                events.append(Event(b.reset_at, 1, "reset", category=b.category))
        events.sort(key=lambda e: (e.at, e.order))
        for rows in by_node.values():
            rows.sort(key=lambda r: (r.detected_at, r.id))
        return cls(since, events, seeds, past, tripped, blamed, first_seen, stored, dict(by_node))

    def stored_episode(self, node: str, at: datetime) -> int | None:
        """hpresil's incident of ``node`` open at ``at``."""
        rows = self.by_node.get(node, [])
        i = bisect.bisect_right(rows, at, key=lambda r: r.detected_at)
        if i == 0:
            return None
        row = rows[i - 1]
        return row.id if row.resolved_at is None or row.resolved_at > at else None


class Ledger:
    """The replay's incidents, breakers and nodes out: what the limits and escalation
    ask of the database, answered from memory."""

    def __init__(self, history: History, cfg: PolicyConfig) -> None:
        self.cfg = cfg
        self.history = history
        self.open: dict[str, Incident] = {}
        self.out: set[str] = set()
        self.tripped = set(history.tripped)
        self.episodes: list[Incident] = []
        self.trips = 0
        self._seq = itertools.count(1)
        self._index: dict[tuple[Any, ...], list[Incident]] = defaultdict(list)
        self._hit: dict[Category, list[Incident]] = defaultdict(list)  # node incidents
        for row in history.past:
            self._add(self._from_row(row))
        for row in history.seeds:
            inc = self._from_row(row)
            earlier = [a for a in row.actions if a.kind == "drain" and a.created_at < history.since]
            inc.drain_queued = any(a.status is not ActionStatus.FAILED for a in earlier)
            inc.out = any(a.status in _TAKEN_OUT for a in earlier)
            inc.last_held = earlier[-1].outcome if earlier and earlier[-1].outcome in HELD else None
            inc.held_requeue = bool(earlier) and earlier[-1].requeue_jobs
            self._add(inc)
            self.open[inc.node] = inc
            if inc.out:
                self.out.add(inc.node)
            self.episodes.append(inc)

    def _from_row(self, row: IncidentRow) -> Incident:
        return Incident(
            seq=next(self._seq),
            node=row.node,
            detected_at=row.detected_at,
            category=row.category,
            action=row.action,
            hardware=row.hardware,
            summary=row.summary,
            gpu=(row.gpu_serial, row.gpu_uuid, row.gpu_index),
            stored_id=row.id if row.job_id is None else None,
            job=row.job_id is not None,
        )

    def _add(self, inc: Incident) -> None:
        for key in inc.index_keys():
            self._index[key].append(inc)
        if not inc.job:
            bisect.insort(self._hit[inc.category], inc, key=_when)

    def _remove(self, inc: Incident) -> None:
        for key in inc.index_keys():
            self._index[key].remove(inc)
        if not inc.job:
            self._hit[inc.category].remove(inc)

    # --- what the history says ---
    def apply(self, event: Event) -> None:
        if event.kind == "back":
            inc = self.open.pop(event.node, None)
            if inc is not None and inc.out:
                self.out.discard(event.node)
        elif event.kind == "reset":
            assert event.category is not None
            self.tripped.discard(event.category)
        elif event.kind == "operator":
            self._operator_drain(event)
        else:
            assert event.incident is not None
            self._add(self._from_row(event.incident))

    def _operator_drain(self, event: Event) -> None:
        inc = self.open.get(event.node)
        if inc is None and not event.foreign:
            inc = self.open_incident(event.node, event.at, Category.OPERATOR)
            inc.action = Action.DRAIN
        if inc is None:
            return
        inc.drain_queued, inc.last_held = True, None
        if event.done:
            inc.out = True
            self.out.add(inc.node)

    # --- what ingest asks ---
    def open_incident(self, node: str, at: datetime, category: Category) -> Incident:
        inc = Incident(next(self._seq), node, at, category)
        inc.stored_id = self.history.stored_episode(node, at)
        self._add(inc)
        self.open[node] = inc
        self.episodes.append(inc)
        return inc

    def set_identity(self, inc: Incident, f: IncidentIdentity) -> None:
        self._remove(inc)
        inc.category, inc.hardware, inc.summary = f.category, f.hardware, f.summary
        inc.gpu = _gpu_key(f.gpu)
        self._add(inc)

    def earlier(
        self, report: Report, current: Incident | None, now: datetime
    ) -> dict[policy.RecurrenceKey, int]:
        """As :meth:`Ingest._earlier` (``repo.earlier_incidents``), from memory."""
        if not self.cfg.escalate_on_recurrence:
            return {}
        since = now - timedelta(days=self.cfg.recurrence_window_days)
        counts: dict[policy.RecurrenceKey, int] = {}
        for fault in (r for r in report.results if r.is_fault):
            key = policy.recurrence_key(report.node, fault)
            if key in counts:
                continue
            gpu, cat = fault.gpu, key[0]
            if gpu is not None and gpu.serial:
                bucket: tuple[Any, ...] = ("serial", cat, gpu.serial)
            elif gpu is not None and gpu.uuid:
                bucket = ("uuid", cat, gpu.uuid)
            elif gpu is not None:
                bucket = ("gpu", cat, report.node, gpu.index)
            else:
                bucket = ("node", cat, report.node)
            counts[key] = sum(
                1
                for i in self._index.get(bucket, ())
                if i.detected_at >= since and i is not current
            )
        return counts

    def fleet(self, now: datetime) -> int:
        return bisect.bisect_right(self.history.first_seen, now)

    def allowance(self, inc: Incident, requeue: bool, now: datetime) -> tuple[str | None, bool]:
        """As :func:`limits.allowance`: the limit that holds the drain back (None: none
        does), and whether the jobs are requeued all the same."""
        cfg = self.cfg.limits
        if self.cfg.mode == "shadow":
            return "shadow", False
        if inc.category in self.tripped:
            return "breaker", False
        hit = self._hit[inc.category]
        start = bisect.bisect_left(hit, now - timedelta(seconds=cfg.breaker_window_s), key=_when)
        nodes: dict[str, str | None] = {}
        for i in hit[start:]:
            nodes[i.node] = nodes.get(i.node) or self.history.shared(i.stored_id)
        if len(limits.breaker_count(nodes)) > cfg.breaker_nodes:
            self.tripped.add(inc.category)
            self.trips += 1
            return "breaker", False
        if len(self.out - {inc.node}) < cfg.allowed_out(self.fleet(now)):
            return None, False
        return "capped", requeue and inc.category in cfg.never_wait

    def drain(self, inc: Incident, requeue: bool, now: datetime) -> None:
        held, requeue_only = self.allowance(inc, requeue, now)
        inc.drain_queued = True
        if held is None:
            self._take_out(inc, requeue)
            return
        inc.last_held, inc.held_requeue = held, requeue
        if not inc.outcome.drained:
            inc.outcome = replace(inc.outcome, held_by=held)
        if requeue_only:
            inc.outcome = replace(inc.outcome, requeued=True)

    def _take_out(self, inc: Incident, requeue: bool) -> None:
        inc.out, inc.last_held = True, None
        self.out.add(inc.node)
        inc.outcome = Outcome(True, None, inc.outcome.requeued or requeue)

    def drain_held_back(self, now: datetime) -> None:
        """As :func:`limits.drain_held_back`: the drains the cap held back, oldest
        first, while it has room."""
        if self.cfg.mode == "shadow":
            return
        waiting = [i for i in self.open.values() if i.last_held == "capped" and not i.out]
        allowed = self.cfg.limits.allowed_out(self.fleet(now))
        for inc in sorted(waiting, key=lambda i: i.seq):
            if len(self.out) >= allowed:
                break
            if inc.category not in self.tripped:
                self._take_out(inc, inc.held_requeue)


def _when(inc: Incident) -> datetime:
    return inc.detected_at
