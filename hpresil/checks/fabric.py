"""``fabric``: the GPU's NVLink fabric as the fabric manager set it up.

Policy (gpu-health.md s3/s7): on NVSwitch systems a GPU whose fabric state is not
COMPLETED, or whose status is not success, cannot use NVLink (CUDA answers "system
not yet initialized"): drain it (NVLINK_NVSWITCH; restart the fabric manager or
reboot). GPUs outside a managed fabric (PCIe cards, state NOT_SUPPORTED or N/A)
are UNSUPPORTED, never unhealthy.
"""

from __future__ import annotations

from hpresil.checks.finding import fail
from hpresil.checks.per_gpu import PerGpuCheck
from hpresil.vocab import Action, Category, CheckResult
from hpresil.vocab.gpu import GpuSample
from hpresil.vocab.snapshot import Snapshot


class FabricCheck(PerGpuCheck):
    name = "fabric"

    def judge(self, gpu: GpuSample, snapshot: Snapshot) -> CheckResult:
        fabric = gpu.fabric
        if fabric is None:
            return self.unavailable(gpu, snapshot, "NVLink fabric")
        evidence = {
            "state": fabric.state.value,
            "status": fabric.status,
            "clique_id": fabric.clique_id,
            "cluster_uuid": fabric.cluster_uuid,
        }
        findings = []
        if not fabric.healthy:
            text = f"fabric {fabric.state.value}, status {fabric.status or 'unknown'}"
            findings.append(fail(text, Action.DRAIN, Category.NVLINK_NVSWITCH))
        return self.verdict(gpu, snapshot, findings, "fabric completed", evidence)
