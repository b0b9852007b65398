"""The remediation executor: runs pending actions from the database, oldest first.

A background thread, woken at once when the API queues an action. A drain comes
before the requeue of the node's jobs, so a requeued job cannot land back on the
bad node; the jobs are listed when the drain has been done, and each gets its own
``requeue`` action and ``incident_jobs`` row. With ``policy.expedite_requeue`` the
requeued jobs are then made eligible at once, from a short-lived side thread.

Job actions (:mod:`hpresil.controller.jobs`) run here too. A requeue first checks
the job's restart budget: past it the job is requeued *held* and its owner notified.
Each requeue records the interruption (the work lost since the job's newest
checkpoint) and, once the job is PENDING, keeps it off the failed node and the nodes
under suspicion (``jobs.exclude_failed_nodes``). ``hold``, ``signal``, ``cancel`` and
``notify`` (a webhook POST) act on one job each; ``reboot`` (the recovery ladder's
rung, :mod:`hpresil.controller.recovery`) on a node hpresil drained. ``resume`` is
never run here: the operator runs it at once and records it done.

The executor only executes: each kind has one handler (``_HANDLERS``); what a requeue
does and why is decided by :func:`~hpresil.controller.jobs.rules.requeue_plan`, what
it records in the job ledger by :mod:`~hpresil.controller.jobs.ledger`, and the
requeued jobs are expedited by :mod:`~hpresil.controller.jobs.expedite`.

A Slurm (or webhook) failure leaves the action pending with a growing back-off (0.5, 1, 2 … 30 s)
until ``max_attempts`` (20: over seven minutes of back-off, plus the attempts themselves,
so a slurmctld restart is outlasted), then it is ``failed`` with the outcome
``retries_exhausted``; the reconcile pass queues such a drain or requeue again once Slurm
answers (:func:`hpresil.controller.reconcile.retry_given_up`). Slurm's own "cannot reach
slurmctld" answers are such failures (:class:`~hpresil.errors.SlurmUnavailable`). A
retried drain or requeue is not applied twice: a node already drained by hpresil is
left as is, a job no longer running is not requeued. No database transaction is held
while Slurm is called. Pending actions are in the database, so a restarted controller
(or the replica that leads next) picks them up. Before each action the executor asks
``leads`` (:meth:`hpresil.controller.leader.Leader.confirm`); answered no, it stops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from sqlalchemy.orm import Session

from hpresil.adapters.slurm import Slurm, SlurmJob
from hpresil.config import JobsConfig, PolicyConfig
from hpresil.config.recovery import RecoveryConfig
from hpresil.controller import replace
from hpresil.controller.backoff import Backoff
from hpresil.controller.jobs import actions, expedite, ledger, notify, rules
from hpresil.controller.policy import clip, drain_reason, one_line
from hpresil.errors import HpresilError, SlurmError
from hpresil.store import Clock, Store, jobrepo, repo, utcnow
from hpresil.store.models import ActionRow
from hpresil.vocab.actions import (
    ActionKind,
    ActionStatus,
    DrainOutcome,
    HoldOutcome,
    RebootOutcome,
    RequeueOutcome,
)

log = logging.getLogger(__name__)

_OURS = (DrainOutcome.DRAINED, DrainOutcome.ALREADY_OURS)
GAVE_UP = "retries_exhausted"  # the outcome of an action failed after max_attempts


@dataclass(frozen=True)
class _Task:
    """What is needed to run an action, read before Slurm is called."""

    id: int
    kind: ActionKind
    target: str
    reason: str
    requeue_jobs: bool
    payload: dict[str, Any]


class Executor:
    def __init__(
        self,
        store: Store,
        slurm: Slurm,
        cfg: PolicyConfig,
        *,
        jobs: JobsConfig | None = None,
        clock: Clock = utcnow,
        backoff: Backoff | None = None,
        idle_s: float = 30.0,
        leads: Callable[[], bool] = lambda: True,  # asked before each action (leader.py)
        recovery: RecoveryConfig | None = None,  # the replace rung's hook
    ) -> None:
        self._recovery = recovery or RecoveryConfig()
        self._store = store
        self._slurm = slurm
        self._cfg = cfg
        self._jobs = jobs or JobsConfig()
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._idle_s = idle_s
        self._leads = leads
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._requeued: expedite.Requeued = {}  # this pass's requeued jobs

    # --- thread ---
    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="hpresil-remediation", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
                wait = self.seconds_to_next()
            except Exception:
                log.exception("remediation pass failed; trying again in 1 s")
                wait = 1.0
            self._wake.wait(wait)
            self._wake.clear()

    # --- one pass ---
    def run_due(self) -> int:
        """Run every action that is due now, including those this pass adds."""
        done = 0
        try:
            while not self._stop.is_set() and (task := self._claim()) is not None:
                if not self._leads():  # another replica leads: it runs the action
                    self._stop.set()
                    break
                self._run(task)
                done += 1
        finally:
            jobs, self._requeued = self._requeued, {}
            expedite.in_background(self._slurm, jobs, self._cfg.expedite_requeue)
        return done

    def seconds_to_next(self) -> float:
        with self._store.read() as s:
            due = repo.next_due_time(s)
        if due is None:
            return self._idle_s
        return min(max((due - self._clock()).total_seconds(), 0.0), self._idle_s)

    def _claim(self) -> _Task | None:
        with self._store.read() as s:
            row = repo.next_due_action(s, self._clock())
            return None if row is None else self._task(row)

    def _task(self, row: ActionRow) -> _Task:
        return _Task(
            id=row.id,
            kind=row.kind,
            target=row.target,
            reason=self._reason(row),
            requeue_jobs=row.requeue_jobs,
            payload=dict(row.payload or {}),
        )

    def _reason(self, row: ActionRow) -> str:
        prefix, incident = self._cfg.reason_prefix, row.incident
        if incident is None:
            return clip(f"{prefix} {row.why}")
        common = incident.shared
        return drain_reason(
            prefix,
            incident.id,
            incident.category,
            incident.xid,
            incident.gpu_index,
            None if common is None else common.label,
        )

    def _run(self, task: _Task) -> None:
        try:
            handler = _HANDLERS.get(task.kind)
            if handler is None:  # resume: done by the operator at once, never queued
                raise HpresilError(f"the executor does not run {task.kind!r} actions")
            handler(self, task)
        except (SlurmError, notify.WebhookError) as exc:
            self._retry_later(task, exc)
        except HpresilError as exc:  # retrying will not help (e.g. node unknown to Slurm)
            self._finish_failed(task, str(exc))
        except Exception as exc:
            log.exception("action #%d (%s %s) raised", task.id, task.kind, task.target)
            self._retry_later(task, exc)

    # --- drain, then requeue ---
    def _drain(self, task: _Task) -> None:
        outcome = self._slurm.drain(task.target, task.reason)
        jobs = self._running_jobs(task.target) if task.requeue_jobs else []
        now = self._clock()
        with self._store.write() as s:
            row = _row(s, task)
            status = ActionStatus.DONE if outcome in _OURS else ActionStatus.SKIPPED
            _finish(row, status, outcome.value, now)
            incident = row.incident
            if incident is not None and outcome in _OURS and incident.drained_at is None:
                incident.drained_at = now
            if incident is not None:
                for job in jobs:
                    actions.queue_requeue(s, incident, job, row.why, now)
        log.info(
            "drain %s (%s): %s, %d job(s) to requeue", task.target, task.reason, outcome, len(jobs)
        )

    def _requeue_node(self, task: _Task) -> None:
        """A fault whose jobs cannot wait, on a node the limits keep in service: each
        job running there gets its requeue, as after a drain."""
        jobs = self._running_jobs(task.target)
        now = self._clock()
        with self._store.write() as s:
            row = _row(s, task)
            _finish(row, ActionStatus.DONE, f"{len(jobs)} job(s)", now)
            if row.incident is not None:
                for job in jobs:
                    actions.queue_requeue(s, row.incident, job, row.why, now)
        log.info("jobs of %s to requeue without a drain: %d", task.target, len(jobs))

    def _running_jobs(self, node: str) -> list[SlurmJob]:
        return [job for job in self._slurm.jobs(node=node) if job.running]

    def _requeue(self, task: _Task) -> None:
        job_id = int(task.target)
        job = self._slurm.job(job_id)
        plan = self._requeue_plan(task, job)
        if plan.already_requeued:
            log.info("job %s was requeued since it was found on the node", job_id)
            outcome = RequeueOutcome.REQUEUED
        else:
            outcome = self._slurm.requeue(job_id, hold=plan.hold, known=job)
        usable = self._usable_nodes() if outcome is RequeueOutcome.REQUEUED else set()
        now = self._clock()
        with self._store.write() as s:
            action = _row(s, task)
            stopped = outcome in (RequeueOutcome.REQUEUED, RequeueOutcome.HELD)
            _finish(
                action, ActionStatus.DONE if stopped else ActionStatus.SKIPPED, outcome.value, now
            )
            if action.incident_job is not None:
                action.incident_job.requeue_outcome = outcome.value
                action.incident_job.requeued_at = now if stopped else None
            row = ledger.note_requeue(s, action, job, outcome, plan, now, self._jobs)
            if outcome is RequeueOutcome.REQUEUED and self._jobs.exclude_failed_nodes:
                failed_on = ledger.failed_on(action)
                self._requeued[job_id] = ledger.exclusions(
                    s, row, job, failed_on, usable, self._jobs, now
                )
        log.info("requeue job %s: %s", task.target, outcome)

    def _requeue_plan(self, task: _Task, job: SlurmJob | None) -> rules.RequeuePlan:
        job_id = int(task.target)
        with self._store.read() as s:
            row = jobrepo.active_job(s, job_id)
            return rules.requeue_plan(
                restarts=job.restart_count if job is not None else None,
                found_at=_restarts_when_found(s, task),
                budget=rules.budget_of(row.budget if row else None, self._jobs),
                blamed=row.blamed if row else None,
                job_id=job_id,
            )

    def _usable_nodes(self) -> set[str]:
        """Nodes Slurm could start a job on now (not drained, not down)."""
        if not self._jobs.exclude_failed_nodes:
            return set()
        try:
            return {n.name for n in self._slurm.nodes() if not (n.drained or n.down)}
        except SlurmError as exc:
            log.warning("could not list nodes for the requeued job's exclusions: %s", exc)
            return set()

    def _hold(self, task: _Task) -> None:
        job_id = int(task.target)
        job = self._slurm.job(job_id)
        outcome = self._slurm.hold(job_id, known=job)
        now = self._clock()
        with self._store.write() as s:
            action = _row(s, task)
            done = outcome in (HoldOutcome.HELD, HoldOutcome.REQUEUE_HELD, HoldOutcome.ALREADY_HELD)
            _finish(action, ActionStatus.DONE if done else ActionStatus.SKIPPED, outcome.value, now)
            row = jobrepo.active_job(s, job_id)
            if row is not None and done:
                ledger.held(row, action.why, now)
                if outcome is HoldOutcome.REQUEUE_HELD:
                    restarts = job.restart_count if job else row.restarts
                    ledger.interrupted(row, now, None, action.why, restarts, action.incident)
        log.info("hold job %s: %s", task.target, outcome)

    def _signal(self, task: _Task) -> None:
        signal = str(task.payload.get("signal") or self._jobs.hang_signal)
        sent = self._slurm.signal(int(task.target), signal)
        self._finish_now(task, sent, f"sent {signal}" if sent else "not_running")

    def _cancel(self, task: _Task) -> None:
        cancelled = self._slurm.cancel(int(task.target))
        self._finish_now(task, cancelled, "cancelled" if cancelled else "not_active")

    def _reboot(self, task: _Task) -> None:  # recovery's reboot rung; the reason: the drain's
        outcome = self._slurm.reboot(task.target, task.reason)
        self._finish_now(task, outcome is not RebootOutcome.NOT_OURS, outcome.value)

    def _replace(self, task: _Task) -> None:  # recovery's replace rung: marked, then the hook
        outcome = replace.run(self._store, self._slurm, self._recovery, task.id, task.reason)
        self._finish_now(task, outcome != replace.NOT_OURS, outcome)

    def _notify(self, task: _Task) -> None:
        code = notify.post(self._jobs.webhook_url, task.payload, self._jobs.webhook_timeout_s)
        self._finish_now(task, True, f"http {code}")

    def _finish_now(self, task: _Task, done: bool, outcome: str) -> None:
        with self._store.write() as s:
            status = ActionStatus.DONE if done else ActionStatus.SKIPPED
            _finish(_row(s, task), status, outcome, self._clock())
        log.info("%s %s: %s", task.kind, task.target, outcome)

    # --- failures ---
    def _retry_later(self, task: _Task, exc: Exception) -> None:
        error = one_line(exc)
        now = self._clock()
        with self._store.write() as s:
            row = _row(s, task)
            row.attempts += 1
            row.error = error
            if row.attempts >= self._backoff.max_attempts:
                row.status, row.outcome, row.done_at = ActionStatus.FAILED, GAVE_UP, now
                what = f"{task.kind} {task.target}"
                log.error("%s failed after %d attempts: %s", what, row.attempts, error)
                return
            delay = self._backoff.delay(row.attempts)
            row.not_before = now + timedelta(seconds=delay)
        log.warning("%s %s: %s; retrying in %.1f s", task.kind, task.target, error, delay)

    def _finish_failed(self, task: _Task, error: str) -> None:
        with self._store.write() as s:
            row = _row(s, task)
            row.attempts += 1
            row.error = error
            row.status, row.done_at = ActionStatus.FAILED, self._clock()
        log.error("%s %s failed: %s", task.kind, task.target, error)


def _row(s: Session, task: _Task) -> ActionRow:
    row = s.get(ActionRow, task.id)
    if row is None:
        raise HpresilError(f"action #{task.id} vanished from the database")
    return row


def _restarts_when_found(s: Session, task: _Task) -> int | None:
    """The job's restart count when the drain found it on the node, if it was."""
    affected = _row(s, task).incident_job
    return affected.restart_count if affected is not None else None


def _finish(row: ActionRow, status: ActionStatus, outcome: str, now: datetime) -> None:
    row.attempts += 1
    row.status = status
    row.outcome = outcome
    row.error = None
    row.done_at = now


_HANDLERS: Mapping[ActionKind, Callable[[Executor, _Task], None]] = MappingProxyType(
    {
        "drain": Executor._drain,
        "requeue": Executor._requeue,
        "requeue_node": Executor._requeue_node,
        "hold": Executor._hold,
        "signal": Executor._signal,
        "cancel": Executor._cancel,
        "notify": Executor._notify,
        "reboot": Executor._reboot,
        "replace": Executor._replace,
    }
)
