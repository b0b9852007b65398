"""Taking in an agent's report: store it once, update its node, apply the policy.

Everything happens in one transaction; a report_id seen before changes nothing
(agents retry until acknowledged). Drains are queued as action rows and the
remediation executor is woken at once.

A node keeps the latest report's view of each check: a report that carries a check
replaces every stored result of that check (a per-GPU FAIL the check no longer
reports goes), checks it does not carry keep theirs. Order is arrival order, never
the agent's ``observed_at`` (an agent clock in the year 9999 must not pin a
result). At most ``max_results`` results are kept per node, faults and then the
report's own first; the rest is dropped with a warning. Stored results are kept as
stored, never validated again.

A *late* report (an agent spool report whose ``seq`` is below one this node already
delivered: the spool puts off a report the controller failed on and delivers the
ones behind it) is stored and its faults are judged (a fault seen once is acted on
once), but it does not replace the node's newer results, lower ``last_seq`` or
overwrite the job ledger with older progress. ``seq`` 0 is not the spool's (burn-in
results from the CLI) and is never late.

The report is encoded before the lock; under it, only the database work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hpresil.api import ReportAck
from hpresil.config import JobsConfig, PolicyConfig
from hpresil.controller import limits, policy, shared
from hpresil.controller.identity import set_identity
from hpresil.controller.jobs import blame, ledger
from hpresil.controller.known import KnownNodes, check_name
from hpresil.controller.policy import Decision, OpenIncident
from hpresil.controller.topology import Fabric
from hpresil.store import Clock, Store, repo
from hpresil.store.models import IncidentRow, JobRow, NodeRow
from hpresil.vocab import CheckResult, Report, Status
from hpresil.vocab.actions import ActionStatus

log = logging.getLogger(__name__)

DUPLICATE = ReportAck(accepted=True, duplicate=True)
MAX_RESULTS_PER_NODE = 1024  # 8 GPUs x some 40 checks is 320
RETENTION_PRIORITY = {Status.FAIL.value: 0, Status.WARN.value: 1, Status.UNKNOWN.value: 2}
"""Which stored results a node over MAX_RESULTS_PER_NODE keeps first: lower first, any
other status 3. A retention priority, not the severity order (:attr:`Status.rank`, in
which UNKNOWN is worse than WARN: a doubt about a node weighs more than a warning when
judging it). What is kept is what an operator reads next: a WARN is something the
check found on the node, an UNKNOWN only says a check could not run, so under the cap
the WARN is kept first."""

ResultKey = tuple[str, int]


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
        self._fresh_s = fresh_s  # a node's job usage older than this is not current
        self._clock = clock
        self._wake = wake
        self._max_results = max_results
        self._known = known  # None: any name that can be a Slurm node's
        self._fabric = fabric  # None: no component is shared
        # one report at a time: one open incident per node, and one ledger row per job
        # (a job's nodes report at once); kept short: the report is encoded before it
        self._lock = threading.Lock()

    def __call__(self, report: Report) -> ReportAck:
        """Take ``report`` in; :class:`NotFound` for a node Slurm does not know."""
        if self._known is not None:
            self._known.require(report.node)
        else:
            check_name(report.node)
        incoming = Incoming.of(report)
        try:
            with self._lock, self._store.write() as s:
                if repo.report_seen(s, report.report_id):
                    return DUPLICATE
                decision, incidents, acted = self._take(s, incoming)
        except IntegrityError as exc:
            if "report_id" not in str(exc.orig):  # only a racing duplicate is expected
                raise
            log.info("report %s was stored meanwhile: duplicate", report.report_id)
            return DUPLICATE
        if decision.drain or acted:
            self._wake()
        return ReportAck(accepted=True, duplicate=False, incidents=incidents)

    def _take(self, s: Session, incoming: Incoming) -> tuple[Decision, list[int], bool]:
        now, report = self._clock(), incoming.report
        node = repo.ensure_node(s, report.node, now)
        s.flush()  # the report's foreign key needs the node row
        repo.add_report(s, report, now, body=incoming.body)
        late = is_late(node, report)
        if late:
            log.info("%s: report seq %d after seq %d: late", node.name, report.seq, node.last_seq)
            node.last_report_at = now
            here: Sequence[JobRow] = ()
        else:
            note_report(node, incoming, now, self._max_results)
            here = ledger.observe(s, node.name, report.jobs, now, self._jobs, fresh_s=self._fresh_s)
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
                return decision, blamed, True
        if not decision.acts:
            if current is not None and not late and limits.only_recorded(current):
                repo.resolve(s, current, now)  # healthy again; a later fault is a new one
                log.info("%s: incident #%d (drain held back) resolved", node.name, current.id)
            return decision, blamed, bool(blamed)
        incident = apply(s, node.name, decision, current, now, self._cfg, self._jobs, self._fabric)
        return decision, [incident.id, *blamed], bool(blamed)

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
    ) -> dict[policy.RecurrenceKey, int]:
        """Earlier incidents like each fault in the report, for escalation."""
        if not self._cfg.escalate_on_recurrence:
            return {}
        since = now - timedelta(days=self._cfg.recurrence_window_days)
        counts: dict[policy.RecurrenceKey, int] = {}
        for fault in (r for r in report.results if r.is_fault):
            key = policy.recurrence_key(report.node, fault)
            if key not in counts:
                counts[key] = repo.earlier_incidents(
                    s,
                    category=key[0],
                    node=report.node,
                    gpu=fault.gpu,
                    since=since,
                    exclude=current.id if current else None,
                )
        return counts


def is_late(node: NodeRow, report: Report) -> bool:
    """Whether ``report`` comes from the agent's spool behind one already taken in."""
    return 0 < report.seq < (node.last_seq or 0)


def note_report(node: NodeRow, incoming: Incoming, now: datetime, max_results: int) -> None:
    report = incoming.report
    node.last_report_at = now
    node.last_seq = report.seq
    if report.gpus:
        node.gpus = len(report.gpus)
    if incoming.results:
        merged, dropped = merge_results(node.last_results or [], incoming.results, max_results)
        node.last_results = merged
        if dropped:
            log.warning(
                "%s: %d result(s) not kept: over the limit of %d per node",
                node.name,
                dropped,
                max_results,
            )


def merge_results(
    stored: Iterable[Any], new: Mapping[ResultKey, dict[str, Any]], limit: int
) -> tuple[list[dict[str, Any]], int]:
    """The stored results with every check in ``new`` replaced by its results there;
    at most ``limit`` of them (faults first, then ``new``'s), and how many went."""
    checks = {check for check, _ in new}
    keyed = ((_stored_key(d), d) for d in stored if isinstance(d, dict))
    old = {k: d for k, d in keyed if k is not None and k[0] not in checks}
    ranked = sorted([*_ranked(new, 0), *_ranked(old, 1)])
    kept = {key: result for *_, key, result in ranked[:limit]}
    return [kept[k] for k in sorted(kept)], len(ranked) - len(kept)


def _ranked(
    results: Mapping[ResultKey, dict[str, Any]], age: int
) -> Iterable[tuple[int, int, ResultKey, dict[str, Any]]]:
    """Sort keys: faults first, then the newer report's, then by (check, GPU)."""
    for key, result in results.items():
        status = result.get("status")
        priority = RETENTION_PRIORITY.get(status, 3) if isinstance(status, str) else 3
        yield (priority, age, key, result)


def _stored_key(stored: dict[str, Any]) -> ResultKey | None:
    """The (check, GPU index) of a stored result, or None for one unreadable."""
    check, gpu = stored.get("check"), stored.get("gpu")
    index = gpu.get("index") if isinstance(gpu, dict) else -1
    if not isinstance(check, str) or not isinstance(index, int):
        return None
    return (check, index)


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
