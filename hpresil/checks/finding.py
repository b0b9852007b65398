"""One thing a check found wrong with its subject (a GPU, a disk, a port, ...).

Per-GPU checks (:class:`~hpresil.checks.per_gpu.PerGpuCheck`) and host checks
(:class:`~hpresil.checks.host_check.HostCheck`) both judge by listing findings, then
turn them into one result with their ``verdict``. A per-GPU finding names its failure
category; a host check's findings leave it None, the check names one for them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpresil.vocab import Action, Category, Status


@dataclass(frozen=True)
class Finding:
    status: Status
    text: str
    action: Action = Action.NONE
    category: Category | None = None

    @property
    def severity(self) -> tuple[int, int]:
        """How bad, for sorting: the status's rank, then the action's."""
        return (self.status.rank, self.action.rank)


def fail(text: str, action: Action = Action.DRAIN, category: Category | None = None) -> Finding:
    return Finding(Status.FAIL, text, action, category)


def warn(text: str, category: Category | None = None, action: Action = Action.WATCH) -> Finding:
    return Finding(Status.WARN, text, action, category)
