"""Replaying a policy over the stored history: what hpresil would have done with
another ``[policy]`` (``hpresil policy replay``), beside what it did.

The stored reports are taken in arrival order and judged again, as
:mod:`hpresil.controller.ingest` judges them, by :func:`policy.decide` and the limits
(shadow mode, the breaker, the cap), but on the replay's own state, in memory
(:mod:`hpresil.controller.replay_ledger`): the open incident of each node, the drains
it queued or held back, the breakers it tripped, the incidents that count for
escalation. Nothing is written. It starts at the oldest report kept
(``controller.report_retention_days``) when asked to start earlier.

What the reports cannot say is taken from the stored history, as it happened:

* a node **back in service**: when a stored incident of the node was resolved
  (reconcile saw it return, or an operator resumed it), the replay's open incident
  of the node closes too, and the drains the cap held back get their chance;
* an **operator's drain** (the API, or a node's health hook): it opens an
  ``operator`` incident, or counts as the drain of the open one;
* a **breaker reset** by an operator resets the replay's breaker of that category;
* a **job blamed** instead of its node, and a job's hang: their incidents count for
  escalation, and a report whose fault was blamed on a job drains nothing;
* the **fleet** is the nodes first seen by then.

Only the controller's decision is replayed: what a check found (its status, action
and category: ``[checks.*]`` thresholds, ``[xid.overrides]``) was judged on the node
and is stored as the agent sent it. Drains are taken as done (a drain Slurm refused
is the stored history's only); a drain the cap held back is queued as soon as a node
comes back, as reconcile's next pass would.

Each *episode* (a node's incident, from the fault that opened it to the node's
return) is compared with the stored incident of the same node and time: drained in
one and not the other, held back by another limit, jobs requeued in one only.
Replayed with the configuration hpresil ran with, there is no difference.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from hpresil.config import PolicyConfig
from hpresil.controller import policy
from hpresil.controller.policy import Decision
from hpresil.controller.replay_ledger import (
    HELD,
    NOTHING,
    POLICY_WHY,
    Event,
    History,
    Incident,
    Ledger,
    Outcome,
)
from hpresil.store.history import (
    StoredReport,
    breakers_since,
    first_seen,
    incidents_since,
    oldest_report,
    reports_since,
)
from hpresil.store.models import IncidentRow
from hpresil.vocab import Report, Status


def horizon(since: datetime, cfg: PolicyConfig) -> datetime:
    """How far back before ``since`` incidents still count: for escalation and for
    the breaker's window."""
    back = max(
        timedelta(days=cfg.recurrence_window_days),
        timedelta(seconds=cfg.limits.breaker_window_s),
    )
    return since - back


# --- what was done, per episode ---


@dataclass(frozen=True)
class Difference:
    """One episode that the replayed policy would have handled otherwise."""

    node: str
    incident: int | None  # hpresil's incident for the episode; None: it stored none
    at: datetime  # when the episode began
    category: str
    fault: str  # what opened it, in the check's words
    stored: Outcome
    replayed: Outcome
    jobs: tuple[int, ...]  # jobs running on the node at its last fault, as reported

    @property
    def changes(self) -> tuple[str, ...]:
        """``drain added``, ``drain removed`` (the node kept in service), ``held back``
        (by another limit, or by one only), ``requeue added``, ``requeue removed``."""
        a, b = self.stored, self.replayed
        found = []
        if a.drained != b.drained:
            found.append("drain added" if b.drained else "drain removed")
        elif a.held_by != b.held_by:
            found.append("held back")
        if a.requeued != b.requeued:
            found.append("requeue added" if b.requeued else "requeue removed")
        return tuple(found)


@dataclass
class Result:
    """The replay's figures and its differences from the stored history."""

    since: datetime
    reports: int = 0  # replayed
    judged: int = 0  # of them, with a fault to judge
    unreadable: int = 0  # bodies that no longer read as a report: skipped
    episodes: int = 0  # compared
    drained_stored: int = 0  # episodes drained
    drained_replayed: int = 0
    breakers_tripped: int = 0  # by the replay
    differences: list[Difference] = field(default_factory=list)

    @property
    def kept_in_service(self) -> list[str]:
        """Nodes the replayed policy would not have drained where hpresil did."""
        return sorted({d.node for d in self.differences if "drain removed" in d.changes})


# --- the replay ---
def run(s: Session, since: datetime, cfg: PolicyConfig) -> Result:
    """Replay the reports stored since ``since`` with ``cfg``, read in session ``s``
    (the reports streamed, the incidents and breakers that count read at once). It
    starts at the oldest report kept when ``since`` reaches further: without its
    reports, what hpresil did earlier cannot be replayed."""
    oldest = oldest_report(s)
    since = max(since, oldest) if oldest is not None else since
    back = horizon(since, cfg)
    known = History.of(incidents_since(s, back), breakers_since(s, back), first_seen(s), since)
    return replay(reports_since(s, since), known, cfg)


def replay(reports: Iterable[StoredReport], history: History, cfg: PolicyConfig) -> Result:
    """Judge ``reports`` (arrival order) again with ``cfg``; compare with ``history``."""
    ledger = Ledger(history, cfg)
    result = Result(since=history.since)
    events = iter(history.events)
    pending = next(events, None)
    for stored in reports:
        result.reports += 1
        while pending is not None and _before(pending, stored.received_at):
            ledger.apply(pending)
            if pending.kind in ("back", "reset"):
                ledger.drain_held_back(pending.at)
            pending = next(events, None)
        if not _has_failure(stored.body):
            continue
        try:
            report = Report.model_validate(stored.body)
        except ValidationError:
            result.unreadable += 1
            continue
        result.judged += 1
        _judge(ledger, report, stored.received_at)
    result.breakers_tripped = ledger.trips
    _compare(ledger, history, result)
    return result


def _before(event: Event, at: datetime) -> bool:
    """Whether ``event`` happened before a report received ``at``: a job's incident
    stored with the report itself came after it was judged."""
    return event.at < at if event.kind == "job" else event.at <= at


def _has_failure(body: dict[str, Any]) -> bool:
    """Whether a stored report has a FAIL result: the others change nothing (read
    without validating the report, most reports being heartbeats)."""
    results = body.get("results")
    return isinstance(results, list) and any(
        isinstance(r, dict) and r.get("status") == Status.FAIL.value for r in results
    )


def _judge(ledger: Ledger, report: Report, now: datetime) -> None:
    """As :meth:`Ingest._take` and :func:`ingest.apply`, on the replay's ledger."""
    node = report.node
    current = ledger.open.get(node)
    summary = current.summary_for_policy() if current else None
    earlier = ledger.earlier(report, current, now)
    decision: Decision = policy.decide(report.results, summary, ledger.cfg, earlier, node)
    if (node, now) in ledger.history.blamed and decision.drain:
        decision = replace(decision, drain=False, requeue=False)
        if current is None:
            return
    if not decision.acts:
        return
    if current is None:
        assert decision.identity is not None  # a new incident takes the fault's identity
        current = ledger.open_incident(node, now, decision.identity.category)
    if decision.identity is not None:
        ledger.set_identity(current, decision.identity)
    current.action = decision.action
    current.jobs = tuple(j.job_id for j in report.jobs)
    if decision.drain:
        ledger.drain(current, decision.requeue, now)


def _compare(ledger: Ledger, history: History, result: Result) -> None:
    """Pair each replayed episode with hpresil's incident of it; list the differences."""
    replayed: dict[int, Incident] = {}
    unpaired: list[Incident] = []
    for inc in ledger.episodes:
        if inc.stored_id is None:
            unpaired.append(inc)
        elif inc.stored_id in replayed:  # one stored incident, two replayed: merged
            first = replayed[inc.stored_id]
            first.outcome = _merged(first.outcome, inc.outcome)
        else:
            replayed[inc.stored_id] = inc
    stored = {i: stored_outcome(row, history.since) for i, row in history.stored.items()}
    for stored_id in sorted(set(replayed) | {i for i, o in stored.items() if o != NOTHING}):
        _note(result, stored[stored_id], replayed.get(stored_id), history.stored[stored_id])
    for inc in unpaired:
        _note(result, NOTHING, inc, None)


def _note(result: Result, stored: Outcome, inc: Incident | None, row: IncidentRow | None) -> None:
    replayed = inc.outcome if inc else NOTHING
    result.episodes += 1
    result.drained_stored += stored.drained
    result.drained_replayed += replayed.drained
    if stored == replayed:
        return
    source: Incident | IncidentRow | None = inc if inc is not None else row
    assert source is not None
    result.differences.append(
        Difference(
            node=source.node,
            incident=row.id if row else None,
            at=row.detected_at if row else source.detected_at,
            category=source.category.value,
            fault=source.summary,
            stored=stored,
            replayed=replayed,
            jobs=inc.jobs if inc else (),
        )
    )


def _merged(a: Outcome, b: Outcome) -> Outcome:
    drained = a.drained or b.drained
    return Outcome(drained, None if drained else b.held_by or a.held_by, a.requeued or b.requeued)


def stored_outcome(row: IncidentRow, since: datetime) -> Outcome:
    """What hpresil did of an incident since ``since``: its policy's drains (an
    operator's are not the policy's) and the requeues of a node left in service."""
    drained, held, requeued = False, None, False
    for a in row.actions:
        if a.created_at < since:
            continue
        if a.kind == "requeue_node":
            requeued = True
        elif a.kind == "drain" and POLICY_WHY in a.why:
            if a.outcome in HELD:
                held = a.outcome
            else:
                drained, requeued = True, requeued or a.requeue_jobs
    return Outcome(drained, None if drained else held, requeued)
