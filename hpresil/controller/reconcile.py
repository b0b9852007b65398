"""Keeping the store in step with Slurm, every ``controller.reconcile_interval_s``.

* Each Slurm node's state, reason and whether hpresil holds the reason; nodes seen
  only in Slurm get a row (their health is ``unknown`` until they report).
* An open incident whose node is back in service (no DRAIN, no DOWN) after it was
  taken out (an administrator resumed it, a reboot brought it back) is resolved.
* Requeued jobs are watched until they run again: ``restarted_at`` and the node.
* A drain or requeue of an open incident that failed after all its retries (Slurm
  unreachable for longer than the executor's back-off) is queued again once Slurm
  answers, at most ``MAX_ROUNDS`` times; the failed action stays, its outcome naming
  the new one.
* A drain the cap held back is queued once the cap has room
  (:func:`hpresil.controller.limits.drain_held_back`).
* Reports older than ``controller.report_retention_days`` are deleted.

A Slurm failure (unreachable, or an answer it cannot parse) is logged in one line and
the pass is tried again next time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from hpresil.adapters.slurm import Slurm, SlurmJob, SlurmNode
from hpresil.config import ControllerConfig, PolicyConfig
from hpresil.controller import limits
from hpresil.controller.policy import one_line
from hpresil.controller.remediation import GAVE_UP
from hpresil.errors import SlurmError, SlurmParseError
from hpresil.store import Clock, Store, repo, utcnow
from hpresil.store.models import ActionRow, IncidentJobRow, IncidentRow, NodeRow
from hpresil.vocab.actions import ActionStatus, DrainOutcome

log = logging.getLogger(__name__)

MAX_ROUNDS = 4  # actions of one kind for one target and incident: the first and 3 more
_RETRIED = frozenset({"drain", "requeue"})


class Reconciler:
    def __init__(
        self,
        store: Store,
        slurm: Slurm,
        cfg: ControllerConfig,
        *,
        clock: Clock = utcnow,
        wake: Callable[[], None] | None = None,
        policy: PolicyConfig | None = None,
    ) -> None:
        self._store = store
        self._slurm = slurm
        self._cfg = cfg
        self._policy = policy  # with it, drains the cap held back are queued when it has room
        self._clock = clock
        self._wake = wake  # the executor's: actions queued again run at once

    def run_once(self, jobs: Sequence[SlurmJob] | None = None) -> None:
        """One pass; ``jobs``: Slurm's job list when the caller already has it."""
        try:
            self.sync(jobs)
        except (SlurmError, SlurmParseError) as exc:
            log.warning("reconcile: slurm did not answer: %s", one_line(exc))
        self.prune()

    def sync(self, listed: Sequence[SlurmJob] | None = None) -> None:
        seen_at = self._clock()  # before asking: whatever happened earlier is in the answer
        nodes = self._slurm.nodes()
        watching = self._watching(seen_at)
        if watching and listed is None:
            listed = self._slurm.jobs()
        jobs = [j for j in listed or () if j.running] if watching else []
        with self._store.write() as s:
            changed = unlike_rows(s, nodes, self._slurm.owns, seen_at)
            rows = repo.nodes_by_name(s, [node.name for node in changed])
            for node in changed:
                sync_node(s, rows.get(node.name), node, self._slurm.owns(node), seen_at)
            self._resolve_returned(s, nodes, seen_at)
            for affected in repo.awaiting_restart(s, self._horizon(seen_at)):
                note_restart(affected, jobs)
            again = retry_given_up(s, seen_at)
            if self._policy is not None:
                again += limits.drain_held_back(s, self._policy, seen_at)
        if again and self._wake is not None:
            self._wake()

    def prune(self) -> None:
        before = self._clock() - timedelta(days=self._cfg.report_retention_days)
        with self._store.write() as s:
            gone = repo.prune_reports(s, before)
        if gone:
            log.info("pruned %d report(s) received before %s", gone, before.isoformat())

    def _watching(self, now: datetime) -> bool:
        with self._store.read() as s:
            return bool(repo.awaiting_restart(s, self._horizon(now)))

    def _horizon(self, now: datetime) -> datetime:
        """Requeued jobs are watched for as long as reports are kept."""
        return now - timedelta(days=self._cfg.report_retention_days)

    def _resolve_returned(self, s: Session, nodes: Sequence[SlurmNode], seen_at: datetime) -> None:
        opened = repo.open_incidents(s)
        for node in nodes:
            incident = opened.get(node.name)
            if incident is None or node.drained or node.down:
                continue
            since = out_of_service_since(incident)
            if since is not None and since <= seen_at:
                repo.resolve(s, incident, self._clock())
                log.info("%s back in service: incident #%d resolved", node.name, incident.id)


SEEN_EVERY = timedelta(hours=1)  # slurm_seen_at is written at least this often
_HELD = select(
    NodeRow.name,
    NodeRow.slurm_state,
    NodeRow.slurm_reason,
    NodeRow.drained_by_hpresil,
    NodeRow.slurm_seen_at,
)


def unlike_rows(
    s: Session, nodes: Sequence[SlurmNode], owns: Callable[[SlurmNode], bool], now: datetime
) -> list[SlurmNode]:
    """The nodes :func:`sync_node` would write: Slurm says something else of them than
    their rows hold, their ``slurm_seen_at`` is due, or they have no row. Read as
    columns (at 20,000 nodes, loading every row as an object was most of a pass)."""
    held = {row.name: row for row in s.execute(_HELD)}
    changed = []
    for node in nodes:
        row = held.get(node.name)
        if (
            row is None
            or _said(node, owns(node))
            != (row.slurm_state, row.slurm_reason, row.drained_by_hpresil)
            or row.slurm_seen_at is None
            or now - row.slurm_seen_at >= SEEN_EVERY
        ):
            changed.append(node)
    return changed


def _said(node: SlurmNode, owned: bool) -> tuple[str, str | None, bool]:
    """What a node's row holds of Slurm's word: state, reason, drained by hpresil."""
    return node.state_text, node.reason, owned and (node.drained or node.down)


def sync_node(
    s: Session, row: NodeRow | None, node: SlurmNode, owned: bool, now: datetime
) -> NodeRow:
    """Record what Slurm says of ``node`` in ``row`` (created when None). Only what
    changed is written: at 20,000 nodes a pass that rewrote every row each interval
    would be the controller's biggest write. ``slurm_seen_at`` (read only as "Slurm
    has listed it") is refreshed when something changed, or hourly."""
    if row is None:
        row = repo.add_node(s, node.name, now)
    now_seen = _said(node, owned)
    if now_seen != (row.slurm_state, row.slurm_reason, row.drained_by_hpresil):
        row.slurm_state, row.slurm_reason, row.drained_by_hpresil = now_seen
        row.slurm_seen_at = now
    elif row.slurm_seen_at is None or now - row.slurm_seen_at >= SEEN_EVERY:
        row.slurm_seen_at = now
    return row


def out_of_service_since(incident: IncidentRow) -> datetime | None:
    """When the node was seen taken out for the incident: drained by hpresil, or
    found drained by someone else. ``None`` while its drain has not happened."""
    if incident.drained_at is not None:
        return incident.drained_at
    foreign = [
        a.done_at
        for a in incident.actions
        if a.kind == "drain" and a.outcome == DrainOutcome.FOREIGN and a.done_at is not None
    ]
    return min(foreign, default=None)


def retry_given_up(s: Session, now: datetime) -> int:
    """Queue again each drain or requeue of an open incident that failed after all
    its retries, now that Slurm answers; answers how many were queued."""
    queued = 0
    for incident in repo.open_incidents(s).values():
        for action in list(incident.actions):
            if _gave_up(action) and _may_retry(incident, action):
                again = _queue_again(s, incident, action, now)
                log.warning(
                    "%s %s (action #%d) gave up while slurm was unreachable: queued again as #%d",
                    action.kind,
                    action.target,
                    action.id,
                    again.id,
                )
                queued += 1
    return queued


def _gave_up(action: ActionRow) -> bool:
    return (
        action.kind in _RETRIED
        and action.status == ActionStatus.FAILED
        and action.outcome == GAVE_UP
    )


def _may_retry(incident: IncidentRow, failed: ActionRow) -> bool:
    """Not while another action of its kind for the same target is pending or went
    through, nor past ``MAX_ROUNDS``."""
    alike = [a for a in incident.actions if (a.kind, a.target) == (failed.kind, failed.target)]
    others = [a for a in alike if a.status != ActionStatus.FAILED]
    return not others and len(alike) < MAX_ROUNDS


def _queue_again(s: Session, incident: IncidentRow, failed: ActionRow, now: datetime) -> ActionRow:
    again = repo.add_action(
        s,
        kind=failed.kind,
        target=failed.target,
        why=failed.why,
        now=now,
        incident=incident,
        requeue_jobs=failed.requeue_jobs,
        payload=failed.payload,
    )
    again.incident_job = failed.incident_job
    s.flush()  # its id
    failed.outcome = f"retried as #{again.id}"
    return again


def note_restart(affected: IncidentJobRow, running: Sequence[SlurmJob]) -> None:
    """Mark the job restarted if it now runs, started after it was requeued."""
    if affected.requeued_at is None:
        return
    for job in running:
        if _same_job(affected, job) and job.started_since(affected.requeued_at):
            affected.restarted_at = job.start_time
            affected.restarted_node = job.head_node
            return


def _same_job(affected: IncidentJobRow, job: SlurmJob) -> bool:
    """Same job id and submit time, or its requeued incarnation: Slurm gives a
    requeued job a new submit time and a higher restart count. A new job that
    reuses the id after Slurm's state was wiped has neither an older submit time
    nor a higher restart count, so it never matches."""
    if job.job_id != affected.job_id or job.submit_time < affected.submit_time:
        return False
    return job.submit_time == affected.submit_time or job.restart_count > affected.restart_count


class Periodic:
    """Runs ``fn`` now and then every ``interval_s`` on a daemon thread; an exception
    is logged and the next run happens as usual. ``share``: the most of a CPU its runs
    may take; after a run that took T CPU-seconds (its thread's, ``cpu_time``: time it
    waits, for Slurm or the database, does not count) it waits at least
    T x (1/share - 1) (:func:`pause`)."""

    def __init__(
        self,
        interval_s: float,
        fn: Callable[[], None],
        name: str,
        *,
        share: float = 1.0,
        cpu_time: Callable[[], float] = time.thread_time,
    ) -> None:
        self._interval = interval_s
        self._share = share
        self._cpu_time = cpu_time
        self._fn = fn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            began = self._cpu_time()
            try:
                self._fn()
            except Exception:
                log.exception("%s failed; next run in %.1f s", self._thread.name, self._interval)
            took = self._cpu_time() - began
            if self._stop.wait(pause(self._interval, took, self._share)):
                return


def pause(interval_s: float, took_s: float, share: float) -> float:
    """How long to wait after a run of ``took_s`` CPU-seconds: ``interval_s``, or longer
    where the runs would otherwise take more than ``share`` of a CPU."""
    return max(interval_s, took_s * (1 / share - 1))
