"""The Slurm adapter: what hpresil may do to a cluster, and the rules it keeps.

:class:`Slurm` wraps a raw :class:`~hpresil.adapters.slurm.model.Backend` (the CLI; a pyslurm
backend can sit behind the same protocol where a Slurm-matched pyslurm exists) and adds the rules:

* drain reasons carry the ``hpresil:`` prefix; a reason someone else set is never
  overwritten, and only nodes hpresil drained are ever resumed;
* only RUNNING, requeueable jobs are requeued (``scontrol requeue`` re-runs a job
  that already completed); a job past its restart budget is requeued *held*;
* a requeued job is kept off nodes by adding them to its ExcNodeList (merged with
  the job's own) once it is PENDING, when Slurm accepts the change;
* transient failures are retried with back-off; the last error is raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import TypeVar

from hpresil.adapters.slurm.model import Backend, SlurmJob, SlurmNode
from hpresil.config import SlurmConfig
from hpresil.errors import HpresilError, SlurmError
from hpresil.vocab.actions import (
    DrainOutcome,
    HoldOutcome,
    RebootOutcome,
    RequeueOutcome,
    ResumeOutcome,
)

__all__ = [
    "Slurm",
    "SlurmJob",
    "SlurmNode",
]

T = TypeVar("T")

ACTIVE_JOB_STATES = frozenset({"RUNNING", "PENDING", "CONFIGURING", "COMPLETING", "SUSPENDED"})


class Slurm:
    def __init__(
        self,
        backend: Backend,
        *,
        prefix: str = "hpresil:",
        retries: int = 3,
        backoff_s: float = 0.2,
    ) -> None:
        self.backend = backend
        self.prefix = prefix
        self._retries = retries
        self._backoff = backoff_s

    @classmethod
    def from_config(cls, cfg: SlurmConfig, prefix: str = "hpresil:") -> Slurm:
        from hpresil.adapters.slurm.cli import CliBackend

        backend = CliBackend(bin_dir=cfg.bin_dir, conf=cfg.conf, timeout=cfg.timeout_s)
        return cls(backend, prefix=prefix, retries=cfg.retries)

    # --- reads ---
    def nodes(self) -> list[SlurmNode]:
        return self._retry(self.backend.nodes)

    def node(self, name: str) -> SlurmNode:
        """``name`` as Slurm says it is now, read alone (a drain or a resume never reads
        the whole listing: some 26 MB at 20,000 nodes, the better part of a second)."""
        node = self._retry(lambda: self.backend.node(name))
        if node is None:
            raise HpresilError(f"slurm has no node named {name!r}")
        return node

    def jobs(self, *, node: str | None = None, active_only: bool = True) -> list[SlurmJob]:
        jobs = self._retry(self.backend.jobs)
        if active_only:
            jobs = [j for j in jobs if j.state in ACTIVE_JOB_STATES]
        if node is not None:
            jobs = [j for j in jobs if node in j.nodes]
        return jobs

    def job(self, job_id: int) -> SlurmJob | None:
        return next((j for j in self.jobs(active_only=False) if j.job_id == job_id), None)

    def owns(self, node: SlurmNode) -> bool:
        """Whether hpresil set this node's current reason."""
        return bool(node.reason) and str(node.reason).startswith(self.prefix)

    # --- writes ---
    def drain(self, name: str, reason: str) -> DrainOutcome:
        """Drain ``name`` with an ``hpresil:`` reason unless someone else holds it."""
        node = self.node(name)
        if node.drained or node.down:
            if self.owns(node):
                return DrainOutcome.ALREADY_OURS
            if node.reason:
                return DrainOutcome.FOREIGN
        full = reason if reason.startswith(self.prefix) else f"{self.prefix} {reason}"
        self._retry(lambda: self.backend.set_node_state(name, "drain", full))
        return DrainOutcome.DRAINED

    def reboot(self, name: str, reason: str) -> RebootOutcome:
        """Reboot ``name`` through Slurm's RebootProgram once no job runs there, only if
        hpresil drained it; it comes back DOWN with the reason (Slurm appends
        " : reboot issued", " : reboot complete"), so it takes no job until resumed."""
        node = self.node(name)
        if not self.owns(node):
            return RebootOutcome.NOT_OURS
        if node.rebooting:
            return RebootOutcome.PENDING
        full = reason if reason.startswith(self.prefix) else f"{self.prefix} {reason}"
        self._retry(lambda: self.backend.reboot(name, full))
        return RebootOutcome.REQUESTED

    def mark(self, name: str, reason: str) -> bool:
        """Give a node hpresil holds out of service (drained or down, its reason
        hpresil's) a new reason, keeping it out; False (nothing done) otherwise."""
        node = self.node(name)
        if not (self.owns(node) and (node.drained or node.down)):
            return False
        full = reason if reason.startswith(self.prefix) else f"{self.prefix} {reason}"
        self._retry(lambda: self.backend.set_node_state(name, "drain", full))
        return True

    def take_over(self, name: str, reason: str, theirs: str) -> bool:
        """Give a node Slurm itself took out of service (down or drained, its reason
        starting with ``theirs``: "Node unexpectedly rebooted") hpresil's reason,
        keeping it out; False (nothing done) when its reason is anything else."""
        node = self.node(name)
        if not ((node.drained or node.down) and (node.reason or "").startswith(theirs)):
            return False
        full = reason if reason.startswith(self.prefix) else f"{self.prefix} {reason}"
        self._retry(lambda: self.backend.set_node_state(name, "drain", full))
        return True

    def resume(self, name: str) -> ResumeOutcome:
        """Return ``name`` to service, only if hpresil drained it."""
        node = self.node(name)
        if not (node.drained or node.down):
            return ResumeOutcome.NOT_DRAINED
        if not self.owns(node):
            return ResumeOutcome.NOT_OURS
        self._retry(lambda: self.backend.set_node_state(name, "resume"))
        return ResumeOutcome.RESUMED

    def requeue(
        self, job_id: int, *, hold: bool = False, known: SlurmJob | None = None
    ) -> RequeueOutcome:
        """Requeue a RUNNING, requeueable job (never a finished one: that would re-run it);
        ``hold``: requeue it held (``scontrol requeuehold``), to wait for its owner.
        ``known``: the job as the caller just read it (saves listing the jobs again)."""
        job = known if known is not None else self.job(job_id)
        if job is None:
            return RequeueOutcome.GONE
        if not job.running:
            return RequeueOutcome.NOT_RUNNING
        if not job.requeue:
            return RequeueOutcome.NOT_REQUEUEABLE
        if hold:
            self._retry(lambda: self.backend.requeue_hold(job_id))
            return RequeueOutcome.HELD
        self._retry(lambda: self.backend.requeue(job_id))
        return RequeueOutcome.REQUEUED

    def hold(self, job_id: int, *, known: SlurmJob | None = None) -> HoldOutcome:
        """Stop a job from (re)starting: hold it where it waits, or stop a running one
        and hold it in the queue (``requeuehold``) so its owner decides what next.
        ``known``: the job as the caller just read it."""
        job = known if known is not None else self.job(job_id)
        if job is None:
            return HoldOutcome.GONE
        if job.held:
            return HoldOutcome.ALREADY_HELD
        if job.state == "PENDING":
            self._retry(lambda: self.backend.hold(job_id))
            return HoldOutcome.HELD
        if job.running and job.requeue:
            self._retry(lambda: self.backend.requeue_hold(job_id))
            return HoldOutcome.REQUEUE_HELD
        return HoldOutcome.FINISHED

    def signal(self, job_id: int, signal: str) -> bool:
        """Send ``signal`` to a running job's batch shell and steps; False if not running."""
        job = self.job(job_id)
        if job is None or not job.running:
            return False
        self._retry(lambda: self.backend.signal(job_id, signal))
        return True

    def cancel(self, job_id: int) -> bool:
        job = self.job(job_id)
        if job is None or job.state not in ACTIVE_JOB_STATES:
            return False
        self._retry(lambda: self.backend.cancel(job_id))
        return True

    def expedite(
        self,
        job_ids: Collection[int],
        *,
        exclude: Mapping[int, Collection[str]] | None = None,
        drop: Mapping[int, Collection[str]] | None = None,
        start_now: bool = True,
        wait_s: float = 15.0,
    ) -> set[int]:
        """Once requeued jobs are PENDING, keep each off the nodes in ``exclude`` (added
        to its own ExcNodeList, after taking out the nodes in ``drop``: exclusions an
        earlier requeue added that no longer apply) and, with ``start_now``, make it
        eligible at once instead of after Slurm's cred_expire wait.

        A requeued job is COMPLETING until its processes are gone; only when it turns
        PENDING does Slurm set its BeginTime (now + cred_expire), so ``StartTime=now``
        must come after that. Polls all jobs together; returns the ids updated."""
        exclude, drop = exclude or {}, drop or {}
        waiting, done = set(job_ids), set()
        deadline = time.monotonic() + wait_s
        while waiting and time.monotonic() < deadline:
            found = {j.job_id: j for j in self.jobs(active_only=False) if j.job_id in waiting}
            for job_id in list(waiting):
                job = found.get(job_id)
                if job is not None and job.state == "PENDING":
                    fields = _pending_update(
                        job, exclude.get(job_id, ()), drop.get(job_id, ()), start_now
                    )
                    if fields:
                        self._update(job_id, fields)
                        done.add(job_id)
                if job is None or job.state != "COMPLETING":
                    waiting.discard(job_id)
            if waiting:
                time.sleep(0.1)
        return done

    def _update(self, job_id: int, fields: Mapping[str, str]) -> None:
        self._retry(lambda: self.backend.update_job(job_id, **fields))

    def _retry(self, call: Callable[[], T]) -> T:
        for attempt in range(self._retries + 1):
            try:
                return call()
            except SlurmError:
                if attempt == self._retries:
                    raise
                time.sleep(self._backoff * 2**attempt)
        raise AssertionError("unreachable")


def _pending_update(
    job: SlurmJob, exclude: Collection[str], drop: Collection[str], start_now: bool
) -> dict[str, str]:
    fields: dict[str, str] = {}
    excluded = (set(job.excluded) - set(drop)) | set(exclude)
    if excluded != set(job.excluded):
        fields["ExcNodeList"] = ",".join(sorted(excluded))
    if start_now:
        fields["StartTime"] = "now"
    return fields
