"""Taking in an agent's report: update its node, store what changed, apply the policy.

Everything happens in one transaction; a report seen before changes nothing (agents
retry until acknowledged): one stored under its ``report_id``, or one of the ``seq``
its node reported last. Drains are queued as action rows and the remediation
executor is woken at once.

A state report's results are merged into the node's (:mod:`hpresil.controller.node_state`:
a check it carries replaces that check's stored results), and the report is stored
with the results that changed: one that changed nothing leaves no row. A heartbeat
(``Report.heartbeat``) carries only the faults of the agent's state, judged again as
the state report's were, and the state's digest: one the controller does not hold asks
for the state (``send_state``). A heartbeat with no faults from a node with no open
incident takes the short way (:mod:`hpresil.controller.heartbeat`). Order is arrival
order, never the agent's ``observed_at`` (an agent clock in the year 9999 must not pin
a result). Stored results are kept as stored, never validated again.

A *late* report (an agent spool report whose ``seq`` is below one this node already
delivered: the spool puts off a report the controller failed on and delivers the
ones behind it) is stored whole and its faults are judged (a fault seen once is acted
on once), but it does not replace the node's newer results, lower ``last_seq`` or
overwrite the job ledger with older progress. ``seq`` 0 is not the spool's (burn-in
results from the CLI) and is never late.

The report is encoded before the lock; under it, only the database work. On
PostgreSQL there is no lock in the process: reports are taken on as many threads as
the server gives them, and wait for each other in the database only where they meet
(:mod:`hpresil.store.serial`: a node's row, a job's rows, the fleet's decisions).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hpresil.api import ReportAck
from hpresil.config import JobsConfig, PolicyConfig
from hpresil.controller import commands, heartbeat, history, limits, policy, shared
from hpresil.controller.identity import set_identity
from hpresil.controller.jobs import blame, ledger
from hpresil.controller.known import KnownNodes, check_name, name_problem
from hpresil.controller.node_state import (
    ResultKey,
    is_late,
    note_state,
    noted,
    taken_already,
    wants_state,
)
from hpresil.controller.policy import Decision, OpenIncident
from hpresil.controller.topology import Fabric
from hpresil.store import Clock, Store, repo, serial
from hpresil.store.models import IncidentRow, JobRow, NodeRow
from hpresil.vocab import CheckResult, Report
from hpresil.vocab.actions import ActionStatus

log = logging.getLogger(__name__)

DUPLICATE = heartbeat.DUPLICATE
MAX_RESULTS_PER_NODE = 1024  # 8 GPUs x some 40 checks is 320


@dataclass(frozen=True)
class Incoming:
    """A report with what is stored of it already encoded (outside the lock)."""

    report: Report
    body: dict[str, Any]
    results: dict[ResultKey, dict[str, Any]]  # the report's latest per (check, GPU)

    @classmethod
    def of(cls, report: Report) -> Incoming:
        body = report.model_dump(mode="json")
        results = {_key(r): d for r, d in zip(report.results, body["results"], strict=True)}
        return cls(report, body, results)


@dataclass(frozen=True)
class Taken:
    decision: Decision
    incidents: list[int] = field(default_factory=list)  # opened or added to
    acted: bool = False  # an action was queued apart from the decision's drain
    send_state: bool = False  # the controller does not hold the state the digest names


class Ingest:
    def __init__(
        self,
        store: Store,
        cfg: PolicyConfig,
        clock: Clock,
        wake: Callable[[], None],
        jobs: JobsConfig | None = None,
        *,
        fresh_s: float = 60.0,
        max_results: int = MAX_RESULTS_PER_NODE,
        known: KnownNodes | None = None,
        fabric: Fabric | None = None,
    ) -> None:
        self._store = store
        self._cfg = cfg
        self._jobs = jobs or JobsConfig()
        self._fresh = fresh_s  # a node's job usage older than this is not current
        self._clock = clock
        self._wake = wake
        self._max_results = max_results
        self._known = known  # None: any name that can be a Slurm node's
        self._fabric = fabric  # None: no component is shared
        self.offers = commands.Offers(store, clock)  # the agents' recovery steps
        # SQLite: one report at a time (the database writes one transaction at a time
        # anyway). PostgreSQL: as many as the threads, serialised in the database where
        # they meet (hpresil.store.serial), across replicas too
        self._lock: AbstractContextManager[object] = (
            nullcontext() if store.engine.dialect.name == "postgresql" else threading.Lock()
        )

    def __call__(self, report: Report) -> ReportAck:
        """Take ``report`` in; :class:`NotFound` for a node Slurm does not know."""
        if self._known is not None:
            self._known.require(report.node)
        else:
            check_name(report.node)
        ack = self._taken(report)
        given = self.offers.for_node(report.node)  # the ladder's steps its agent runs
        return ack.model_copy(update={"commands": given}) if given else ack

    def _taken(self, report: Report) -> ReportAck:
        incoming = Incoming.of(report)
        try:
            with self._lock, self._store.write() as s:
                if heartbeat.quiet(report):
                    ack = heartbeat.take(s, report, self._clock(), self._jobs, fresh_s=self._fresh)
                    if ack is not None:
                        return ack
                elif repo.report_seen(s, report.report_id):
                    return DUPLICATE
                taken = self._take(s, incoming)
        except IntegrityError as exc:
            if "report_id" not in str(exc.orig):  # only a racing duplicate is expected
                raise
            log.info("report %s was stored meanwhile: duplicate", report.report_id)
            return DUPLICATE
        if taken is None:
            return DUPLICATE
        if taken.decision.drain or taken.acted:
            self._wake()
        return ReportAck(
            accepted=True, duplicate=False, incidents=taken.incidents, send_state=taken.send_state
        )

    def knows(self, node: str) -> bool:
        """Whether ``node`` is taken without asking Slurm (the list held, or no list
        kept): what :meth:`heartbeats` may be given."""
        return self._known.holds(node) if self._known is not None else name_problem(node) is None

    def heartbeats(self, reports: Sequence[Report]) -> list[ReportAck | None]:
        """Take quiet heartbeats of nodes it :meth:`knows` in one transaction (a group
        commit: :mod:`hpresil.controller.lane`); None for each that needs the whole way."""
        with self._lock, self._store.write() as s:
            return heartbeat.take_all(s, reports, self._clock(), self._jobs, fresh_s=self._fresh)

    def _take(self, s: Session, incoming: Incoming) -> Taken | None:
        """Take the report in; None when its node's last ``seq`` was it."""
        now, report = self._clock(), incoming.report
        node = repo.ensure_node(s, report.node, now, lock=True)  # its reports in turn
        if taken_already(node.last_seq, report.seq):
            return None
        late = is_late(node.last_seq, report.seq)
        if report.command is not None:
            commands.record(s, report, now)
        if late:
            log.info("%s: report seq %d after seq %d: late", node.name, report.seq, node.last_seq)
            node.last_report_at = now
            here: Sequence[JobRow] = ()
            self._store_report(s, incoming, incoming.body["results"], now)
        else:
            self._note(s, node, incoming, now)
            here = ledger.observe(s, node.name, report.jobs, now, self._jobs, fresh_s=self._fresh)
        taken = self._judge(s, node, report, here, late, now)
        if wants_state(report, node.state_digest, late):
            return replace(taken, send_state=True)
        return taken

    def _note(self, s: Session, node: NodeRow, incoming: Incoming, now: datetime) -> None:
        """A report in order: the node's state (a state report's), and what changed."""
        report = incoming.report
        noted(node, report.seq, len(report.gpus), now)
        if report.heartbeat:
            return  # its results are faults of the state the digest names, judged only
        if report.command is not None:  # a reset's, a burn-in's: kept, not the node's state
            self._store_report(s, incoming, incoming.body["results"], now)
            return
        changed = note_state(node, incoming.results, self._max_results)
        if report.digest is not None:
            node.state_digest = report.digest
        if changed:
            self._store_report(s, incoming, changed, now)

    @staticmethod
    def _store_report(
        s: Session, incoming: Incoming, results: list[dict[str, Any]], now: datetime
    ) -> None:
        if not results:
            return
        s.flush()  # the report's foreign key needs the node row
        body = {**incoming.body, "results": results}
        repo.add_report(s, incoming.report, now, body=body)

    def _judge(
        self,
        s: Session,
        node: NodeRow,
        report: Report,
        here: Sequence[JobRow],
        late: bool,
        now: datetime,
    ) -> Taken:
        """Apply the policy to the report's faults."""
        current = repo.open_incident(s, node.name)
        summary = _summary(s, current) if current else None
        earlier = self._earlier(s, report, current, now)
        decision = policy.decide(report.results, summary, self._cfg, earlier, node.name)
        culprits = self._culprits(s, report, decision, here, now)
        blamed = [blame.record(s, node.name, c, now, self._jobs).id for c in culprits]
        if culprits and decision.drain:
            log.info("%s: not drained: %s", node.name, "; ".join(c.why for c in culprits))
            decision = replace(decision, drain=False, requeue=False)
            if current is None:  # the job's incident records it; the node has none
                return Taken(decision, blamed, True)
        if not decision.acts:
            if current is not None and not late and limits.only_recorded(current):
                repo.resolve(s, current, now)  # healthy again; a later fault is a new one
                log.info("%s: incident #%d (drain held back) resolved", node.name, current.id)
            return Taken(decision, blamed, bool(blamed))
        incident = apply(s, node.name, decision, current, now, self._cfg, self._jobs, self._fabric)
        return Taken(decision, [incident.id, *blamed], bool(blamed))

    def _culprits(
        self,
        s: Session,
        report: Report,
        decision: Decision,
        here: Sequence[JobRow],
        now: datetime,
    ) -> list[blame.Culprit]:
        """Jobs to blame instead of the node: the same failure on several nodes, or a
        protected job's application XIDs."""
        if decision.drain and decision.identity is not None and decision.identity.hardware:
            found = blame.same_failure(s, report.node, decision.identity, here, self._jobs, now)
            if found:
                return found
        seen = {j.job_id: j for j in report.jobs}
        return blame.app_xids(report.results, seen, {r.job_id: r for r in here}, self._jobs)

    def _earlier(
        self, s: Session, report: Report, current: IncidentRow | None, now: datetime
    ) -> policy.History:
        return history.weighed(s, report, current, now, self._cfg)


def apply(
    s: Session,
    node: str,
    decision: Decision,
    current: IncidentRow | None,
    now: datetime,
    cfg: PolicyConfig,
    jobs: JobsConfig,
    fabric: Fabric | None = None,
) -> IncidentRow:
    """Open or update the incident, put a new one down to a shared component if one
    explains it (:mod:`hpresil.controller.shared`), and queue the drain the decision
    asks for, as far as the limits allow (:mod:`hpresil.controller.limits`)."""
    serial.decisions(s)  # the cap, the breakers, shared components: one report at a time
    incident = current or repo.new_incident(s, node, now)
    if decision.identity is not None:
        set_identity(incident, decision.identity)
    incident.findings += decision.findings
    incident.action = decision.action
    s.flush()
    if current is None and fabric is not None:
        _attribute(s, incident, fabric, now, jobs)
    if decision.drain:
        _drain(s, incident, decision, now, cfg, jobs)
    log.info("%s: incident #%d: %s", node, incident.id, decision.why)
    return incident


def _attribute(
    s: Session, incident: IncidentRow, fabric: Fabric, now: datetime, jobs: JobsConfig
) -> None:
    """Put a new incident down to a shared component if one explains it; a webhook
    event when that opens a shared incident (none while the category's breaker is
    tripped: a misfire everywhere would open one per switch)."""
    found = shared.attribute(s, incident, fabric.current, fabric.cfg, now)
    if found is None or not found.opened or not jobs.webhook_url:
        return
    if limits.breaker_tripped(s, incident.category):
        return
    why = policy.clip(f"shared_fault: {found.row.why}", 500)
    repo.add_action(
        s,
        kind="notify",
        target=incident.node,
        why=why,
        now=now,
        incident=incident,
        payload=found.alert(now),
    )


def _drain(
    s: Session,
    incident: IncidentRow,
    decision: Decision,
    now: datetime,
    cfg: PolicyConfig,
    jobs: JobsConfig,
) -> None:
    """Queue the drain, or record it held back (with what may still be done)."""
    node = incident.node
    allowed = limits.allowance(s, node, incident.category, decision.requeue, cfg, now)
    if allowed.drain:
        repo.add_action(
            s,
            kind="drain",
            target=node,
            why=decision.why,
            now=now,
            incident=incident,
            requeue_jobs=decision.requeue,
        )
        return
    why = f"{decision.why}{limits.HELD_MARK}{allowed.why}"
    repo.add_action(
        s,
        kind="drain",
        target=node,
        why=why,
        now=now,
        incident=incident,
        requeue_jobs=decision.requeue,
        done=(ActionStatus.SKIPPED, allowed.held_by),
    )
    if allowed.requeue_only:
        cause = f"{decision.why}; the node stays in service: {allowed.why}"
        repo.add_action(s, kind="requeue_node", target=node, why=cause, now=now, incident=incident)
    if allowed.alert is not None and jobs.webhook_url:
        alert = allowed.alert
        repo.add_action(
            s,
            kind="notify",
            target=node,
            why=policy.clip(f"{alert['event']}: {allowed.why}", 500),
            now=now,
            incident=incident,
            payload=alert,
        )


def _summary(s: Session, row: IncidentRow) -> OpenIncident:
    return OpenIncident(
        id=row.id,
        category=row.category,
        action=row.action,
        hardware=row.hardware,
        drain_queued=repo.drain_queued(s, row.id),
    )


def _key(result: CheckResult) -> tuple[str, int]:
    return (result.check, -1 if result.gpu is None else result.gpu.index)
