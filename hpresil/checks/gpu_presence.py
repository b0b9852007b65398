"""``gpu_presence``: every expected GPU enumerates and none is lost.

Policy (gpu-health.md s7): fewer GPUs than expected, or NVML's GpuIsLost, is
GPU_LOST_PCIE and the node needs a reboot. A GPU backend that could not answer is
UNKNOWN (the check could not run), not a failure.
"""

from __future__ import annotations

from hpresil.vocab import Action, Category, CheckResult, Status
from hpresil.vocab.snapshot import Snapshot


class GpuPresenceCheck:
    name = "gpu_presence"
    tags = frozenset({"quick", "continuous"})
    interval_s = 0.0
    timeout_s = 5.0

    def supported(self, snapshot: Snapshot) -> bool:
        return True

    def evaluate(self, snapshot: Snapshot) -> list[CheckResult]:
        at = snapshot.taken_at
        if snapshot.gpu_error is not None:
            return [
                CheckResult(
                    check=self.name,
                    status=Status.UNKNOWN,
                    summary=f"GPUs could not be queried: {snapshot.gpu_error}"[:500],
                    evidence={"error": snapshot.gpu_error},
                    observed_at=at,
                )
            ]
        results = [
            CheckResult(
                check=self.name,
                status=Status.FAIL,
                action=Action.REBOOT,
                category=Category.GPU_LOST_PCIE,
                summary=f"GPU {g.identity.index} ({g.identity.pci_bus_id}) is lost "
                "(fallen off the bus)",
                gpu=g.identity,
                evidence={"lost": True},
                observed_at=at,
            )
            for g in snapshot.gpus
            if g.lost
        ]
        found, expected = len(snapshot.gpus), snapshot.expected_gpus
        evidence = {"found": found, "expected": expected}
        if expected is not None and found < expected:
            missing = sorted(
                {i.pci_bus_id or str(i.index) for i in snapshot.known_gpus}
                - {g.identity.pci_bus_id or str(g.identity.index) for g in snapshot.gpus}
            )
            results.append(
                CheckResult(
                    check=self.name,
                    status=Status.FAIL,
                    action=Action.REBOOT,
                    category=Category.GPU_LOST_PCIE,
                    summary=f"{found} of {expected} GPUs found",
                    evidence={**evidence, "missing": missing},
                    observed_at=at,
                )
            )
        if not results:
            results.append(
                CheckResult(
                    check=self.name,
                    status=Status.OK,
                    summary=f"{found} GPUs present" + (f" of {expected}" if expected else ""),
                    evidence=evidence,
                    observed_at=at,
                )
            )
        return results
