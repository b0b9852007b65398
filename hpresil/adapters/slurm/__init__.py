"""The Slurm adapter: what hpresil may do to a cluster, and the rules it keeps.

:class:`Slurm` wraps a raw :class:`~hpresil.adapters.slurm.model.Backend` (the CLI by
default; pyslurm where a matching one is importable) and adds the rules:

* drain reasons carry the ``hpresil:`` prefix; a reason someone else set is never
  overwritten, and only nodes hpresil drained are ever resumed;
* only RUNNING, requeueable jobs are requeued (``scontrol requeue`` re-runs a job
  that already completed);
* transient failures are retried with back-off; the last error is raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from hpresil.adapters.slurm.model import (
    Backend,
    DrainOutcome,
    RequeueOutcome,
    ResumeOutcome,
    SlurmJob,
    SlurmNode,
)
from hpresil.config import SlurmConfig
from hpresil.errors import HpresilError, SlurmError

__all__ = [
    "DrainOutcome",
    "RequeueOutcome",
    "ResumeOutcome",
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
        backend: Backend
        if cfg.backend == "pyslurm":
            from hpresil.adapters.slurm.pyslurm_backend import PyslurmBackend

            backend = PyslurmBackend()
        else:
            from hpresil.adapters.slurm.cli import CliBackend

            backend = CliBackend(bin_dir=cfg.bin_dir, conf=cfg.conf, timeout=cfg.timeout_s)
        return cls(backend, prefix=prefix, retries=cfg.retries)

    # --- reads ---
    def nodes(self) -> list[SlurmNode]:
        return self._retry(self.backend.nodes)

    def node(self, name: str) -> SlurmNode:
        for node in self.nodes():
            if node.name == name:
                return node
        raise HpresilError(f"slurm has no node named {name!r}")

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

    def resume(self, name: str) -> ResumeOutcome:
        """Return ``name`` to service, only if hpresil drained it."""
        node = self.node(name)
        if not (node.drained or node.down):
            return ResumeOutcome.NOT_DRAINED
        if not self.owns(node):
            return ResumeOutcome.NOT_OURS
        self._retry(lambda: self.backend.set_node_state(name, "resume"))
        return ResumeOutcome.RESUMED

    def requeue(self, job_id: int, *, expedite: bool = False) -> RequeueOutcome:
        """Requeue a RUNNING, requeueable job; ``expedite`` makes it eligible at once
        instead of after Slurm's credential-expiry wait."""
        job = self.job(job_id)
        if job is None:
            return RequeueOutcome.GONE
        if not job.running:
            return RequeueOutcome.NOT_RUNNING
        if not job.requeue:
            return RequeueOutcome.NOT_REQUEUEABLE
        self._retry(lambda: self.backend.requeue(job_id))
        if expedite:
            self._retry(lambda: self.backend.start_now(job_id))
        return RequeueOutcome.REQUEUED

    def _retry(self, call: Callable[[], T]) -> T:
        for attempt in range(self._retries + 1):
            try:
                return call()
            except SlurmError:
                if attempt == self._retries:
                    raise
                time.sleep(self._backoff * 2**attempt)
        raise AssertionError("unreachable")
