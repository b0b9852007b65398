"""``ecc``: volatile uncorrected memory errors per GPU.

Policy (gpu-health.md s3/s7, as GCM and DCGM): any volatile uncorrected ECC error
fails the GPU; it needs a reset (then diagnostics). A GPU without ECC counters is
UNSUPPORTED, never unhealthy; a counter that could not be read is UNKNOWN. Lost
GPUs are left to ``gpu_presence``.
"""

from __future__ import annotations

from hpresil.adapters.gpu.base import GpuSample
from hpresil.agent.snapshot import Snapshot
from hpresil.vocab import Action, Category, CheckResult, Status


class EccCheck:
    name = "ecc"
    tags = frozenset({"quick", "continuous"})
    interval_s = 0.0
    timeout_s = 5.0

    def supported(self, snapshot: Snapshot) -> bool:
        return snapshot.gpu_error is None and bool(snapshot.gpus)

    def evaluate(self, snapshot: Snapshot) -> list[CheckResult]:
        return [self._judge(g, snapshot) for g in snapshot.gpus if not g.lost]

    def _judge(self, gpu: GpuSample, snapshot: Snapshot) -> CheckResult:
        count = gpu.ecc_uncorrected_volatile
        evidence: dict[str, object] = {
            "uncorrected_volatile": count,
            "corrected_volatile": gpu.ecc_corrected_volatile,
        }
        where = f"GPU {gpu.identity.index} ({gpu.identity.pci_bus_id})"
        status, action, category = Status.OK, Action.NONE, None
        if count is None and gpu.error is not None:
            status, summary = Status.UNKNOWN, f"{where}: ECC counters unreadable: {gpu.error}"
            evidence["error"] = gpu.error
        elif count is None:
            status, summary = Status.UNSUPPORTED, f"{where}: no ECC counters"
        elif count > 0:
            status, action, category = Status.FAIL, Action.RESET_GPU, Category.HBM_ECC
            summary = f"{where}: {count} uncorrected ECC errors since the last reset"
        else:
            summary = f"{where}: no uncorrected ECC errors"
        return CheckResult(
            check=self.name,
            status=status,
            action=action,
            category=category,
            summary=summary[:500],
            gpu=gpu.identity,
            evidence=evidence,
            observed_at=snapshot.taken_at,
        )
