"""What the per-GPU NVML checks share: one result per GPU that answered.

A check subclasses :class:`PerGpuCheck` and writes ``judge(gpu, snapshot)``, usually
as a list of :class:`~hpresil.checks.finding.Finding` turned into one result by
:meth:`PerGpuCheck.verdict` (the worst finding sets status, action and category; the
summary lists them all).
Lost GPUs are left to ``gpu_presence``; a record the GPU does not offer is
UNSUPPORTED, one that could not be read (the sample has an error) is UNKNOWN.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hpresil.checks.finding import Finding
from hpresil.vocab import Action, Category, CheckResult, Status
from hpresil.vocab.gpu import GpuSample
from hpresil.vocab.snapshot import Snapshot


class PerGpuCheck:
    """A check with one result per GPU that answered: subclasses write ``judge``."""

    name = "per_gpu"
    tags = frozenset({"quick", "continuous"})
    interval_s = 0.0
    timeout_s = 5.0

    def supported(self, snapshot: Snapshot) -> bool:
        return snapshot.gpu_error is None and bool(snapshot.gpus)

    def evaluate(self, snapshot: Snapshot) -> list[CheckResult]:
        return [self.judge(g, snapshot) for g in snapshot.gpus if not g.lost]

    def judge(self, gpu: GpuSample, snapshot: Snapshot) -> CheckResult:
        raise NotImplementedError

    def result(
        self,
        gpu: GpuSample,
        snapshot: Snapshot,
        status: Status,
        summary: str,
        evidence: Mapping[str, Any] | None = None,
        *,
        action: Action = Action.NONE,
        category: Category | None = None,
    ) -> CheckResult:
        return CheckResult(
            check=self.name,
            status=status,
            action=action,
            category=category,
            summary=summary[:500],
            gpu=gpu.identity,
            evidence=dict(evidence or {}),
            observed_at=snapshot.taken_at,
        )

    def unavailable(
        self,
        gpu: GpuSample,
        snapshot: Snapshot,
        what: str,
        evidence: Mapping[str, Any] | None = None,
    ) -> CheckResult:
        """No ``what`` in the sample: UNKNOWN when reading failed, else UNSUPPORTED."""
        if gpu.error is not None:
            summary = f"{gpu.where}: {what} unreadable: {gpu.error}"
            return self.result(
                gpu, snapshot, Status.UNKNOWN, summary, {**(evidence or {}), "error": gpu.error}
            )
        return self.result(gpu, snapshot, Status.UNSUPPORTED, f"{gpu.where}: no {what}", evidence)

    def verdict(
        self,
        gpu: GpuSample,
        snapshot: Snapshot,
        findings: list[Finding],
        ok: str,
        evidence: Mapping[str, Any],
    ) -> CheckResult:
        """One result: OK with ``ok`` as summary, or the worst finding's verdict."""
        bad = sorted((f for f in findings if f.status is not Status.OK), key=lambda f: f.severity)
        if not bad:
            return self.result(gpu, snapshot, Status.OK, f"{gpu.where}: {ok}", evidence)
        worst = bad[-1]
        summary = f"{gpu.where}: " + "; ".join(f.text for f in reversed(bad))
        return self.result(
            gpu,
            snapshot,
            worst.status,
            summary,
            evidence,
            action=worst.action,
            category=worst.category,
        )
