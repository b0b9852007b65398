"""The periodic side of job resilience, run with the reconciler.

Each pass asks Slurm for its jobs once and, per job in the ledger:

* records Slurm's view (state, nodes, restart count, the comment's ``hpresil:`` part);
  a job Slurm no longer has active has ended;
* notices a new incarnation: the interruption it resumed from gets its resume time
  and node, or, when Slurm requeued the job by itself (its node went down), the
  interruption is recorded now;
* holds a protected job Slurm requeued past its restart budget;
* finds a protected RUNNING job hung (no progress for its hang time, while the agent
  of its node keeps reporting: a silent agent is not evidence): a job-hang incident,
  the checkpoint signal now, the requeue after ``jobs.hang_grace_s``;
* acts on a job idle past ``jobs.idle.window_s`` when ``jobs.idle.action`` asks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from hpresil.adapters.slurm import ACTIVE_JOB_STATES, Slurm, SlurmJob
from hpresil.config import JobsConfig
from hpresil.controller.jobs import actions, ledger, rules
from hpresil.errors import SlurmError
from hpresil.job.spec import PREFIX
from hpresil.store import Clock, Store, jobrepo, repo, utcnow
from hpresil.store.models import IncidentRow, JobRow, NodeRow
from hpresil.vocab import Category

log = logging.getLogger(__name__)


class JobWatch:
    def __init__(
        self,
        store: Store,
        slurm: Slurm,
        cfg: JobsConfig,
        *,
        clock: Clock = utcnow,
        wake: Callable[[], None] = lambda: None,
        fresh_s: float = 60.0,
    ) -> None:
        self._store = store
        self._slurm = slurm
        self._cfg = cfg
        self._fresh_s = fresh_s  # a node silent longer cannot vouch for a job's progress
        self._clock = clock
        self._wake = wake
        self._warned: set[tuple[int, str]] = set()  # comment problems already logged

    def run_once(self, jobs: Sequence[SlurmJob] | None = None) -> None:
        """One pass; ``jobs``: Slurm's whole job list when the caller already has it."""
        if jobs is None:
            try:
                jobs = self._slurm.jobs(active_only=False)
            except SlurmError as exc:
                log.warning("job watch: slurm did not answer: %s", exc)
                return
        now = self._clock()
        by_id = {job.job_id: job for job in jobs}
        acted = False
        with self._store.write() as s:
            for job in jobs:  # protected from their comment, before any agent saw them
                if job.state in ACTIVE_JOB_STATES and PREFIX in job.comment:
                    jobrepo.ensure_job(s, job.job_id, job.submit_time, now)
            for row in jobrepo.active_jobs(s):
                acted |= self._one(s, row, by_id.get(row.job_id), now)
        if acted:
            self._wake()

    def _one(self, s: Session, row: JobRow, job: SlurmJob | None, now: datetime) -> bool:
        if job is None or job.state not in ACTIVE_JOB_STATES:
            row.ended_at, row.state = now, job.state if job else "GONE"
            _resolve_job_incidents(s, row.job_id, now)
            return False
        before, nodes_before = row.restarts, row.nodes
        for problem in ledger.sync_job(row, job, now):
            if (row.job_id, problem) not in self._warned:
                self._warned.add((row.job_id, problem))
                log.warning("job %d: comment: %s", row.job_id, problem)
        if job.restart_count > before:
            self._new_incarnation(s, row, job, before, nodes_before, now)
        _note_resume(row, job)
        return (
            self._budget(s, row, job, now)
            | self._hang(s, row, job, now)
            | self._idle(s, row, job, now)
        )

    def _new_incarnation(
        self, s: Session, row: JobRow, job: SlurmJob, before: int, nodes: str, now: datetime
    ) -> None:
        if jobrepo.open_interruption(row) is None and row.protected:
            node = nodes.split(",")[0] if nodes else None
            cause = f"requeued by Slurm (restart {job.restart_count}; last on {nodes or '?'})"
            ledger.interrupted(row, now, node, cause, before, None)
        _resolve_job_incidents(s, row.job_id, now)

    def _budget(self, s: Session, row: JobRow, job: SlurmJob, now: datetime) -> bool:
        """Hold a protected job that Slurm itself requeued past its budget."""
        budget = rules.budget_of(row.budget, self._cfg)
        if not row.protected or job.state != "PENDING" or job.held or row.held_reason:
            return False
        if job.restart_count <= budget:
            return False
        why = f"job {row.job_id} was requeued {job.restart_count} times (budget {budget}): held"
        row.held_reason = why
        actions.hold(s, row, why, now, self._cfg)
        return True

    def _hang(self, s: Session, row: JobRow, job: SlurmJob, now: datetime) -> bool:
        hang_s = rules.hang_after(row.hang_s, self._cfg)
        if not row.protected or not job.running or row.hang_signalled_at is not None:
            return False
        last = rules.last_sign_of_life(row.progress_at, row.started_at, row.first_seen_at)
        if not rules.hung(last, hang_s, now):
            return False
        node = job.head_node or ""
        if not self._reporting(s, node, now):
            return False  # its agent is silent: no news is not "no progress"
        sign = row.progress_source or "its start"
        why = (
            f"job {row.job_id} made no progress for {(now - last).total_seconds():.0f} s "
            f"(hang after {hang_s:g} s; last sign: {sign}): signal {self._cfg.hang_signal}, "
            f"requeue in {self._cfg.hang_grace_s:g} s"
        )
        incident = _hang_incident(s, row, job, node, why, now)
        repo.add_action(
            s,
            kind="signal",
            target=str(row.job_id),
            why=why,
            now=now,
            incident=incident,
            payload={"signal": self._cfg.hang_signal},
        )
        requeue = repo.add_action(
            s,
            kind="requeue",
            target=str(row.job_id),
            why=why,
            now=now,
            incident=incident,
            not_before=now + timedelta(seconds=self._cfg.hang_grace_s),
        )
        requeue.incident_job = incident.jobs[0]
        actions.notify(s, row, "job_hung", why, now, self._cfg, incident)
        row.hang_signalled_at = now
        log.info("%s: incident #%d: %s", node, incident.id, why)
        return True

    def _reporting(self, s: Session, node: str, now: datetime) -> bool:
        seen = s.get(NodeRow, node)
        last = seen.last_report_at if seen is not None else None
        return last is not None and now - last <= timedelta(seconds=self._fresh_s)

    def _idle(self, s: Session, row: JobRow, job: SlurmJob, now: datetime) -> bool:
        cfg = self._cfg.idle
        if cfg.action == "none" or row.idle_acted_at is not None or not job.running:
            return False
        if not rules.idle(row.idle_since, cfg.window_s, now):
            return False
        why = (
            f"job {row.job_id}: its {row.gpus} GPU(s) stayed below {cfg.below_pct:g} % "
            f"for {cfg.window_s:g} s"
        )
        row.idle_acted_at = now
        if cfg.action == "cancel":
            repo.add_action(s, kind="cancel", target=str(row.job_id), why=why, now=now)
            actions.notify(s, row, "job_cancelled_idle", why, now, self._cfg)
        else:
            actions.notify(s, row, "job_idle", why, now, self._cfg)
        return True


def _note_resume(row: JobRow, job: SlurmJob) -> None:
    """The open interruption ends when the job runs again (started after it)."""
    pending = jobrepo.open_interruption(row)
    if pending is not None and job.running and job.started_since(pending.at):
        pending.resumed_at = job.start_time
        pending.resumed_node = job.head_node


def _hang_incident(
    s: Session, row: JobRow, job: SlurmJob, node: str, why: str, now: datetime
) -> IncidentRow:
    incident = repo.new_incident(
        s, node, now, category=Category.JOB_HANG, summary=why, findings=1, job_id=row.job_id
    )
    repo.add_affected_job(s, incident, job.job_id, job.submit_time, job.name, job.restart_count)
    s.flush()
    return incident


def _resolve_job_incidents(s: Session, job_id: int, now: datetime) -> None:
    for incident in jobrepo.open_job_incidents(s, job_id):
        repo.resolve(s, incident, now)
