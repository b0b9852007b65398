"""``recovery_action``: what the driver itself asks for (NVML field 230, XID 154).

Policy (gpu-health.md s1/s3/s7): 0 none is OK; 1 GPU reset -> RESET_GPU; 2 node
reboot -> REBOOT; 3 drain peer-to-peer -> DRAIN; 4 drain and reset -> RESET_GPU.
Newer drivers add 5 recover the IMEX domain -> DRAIN, 6 bus reset -> RESET_GPU and
7 system reboot -> REBOOT. Any other value is a WARN. The category is UNKNOWN: the
XID that set the action (kernel log) carries the cause. Drivers or GPUs without the
field: UNSUPPORTED.
"""

from __future__ import annotations

from hpresil.checks.finding import Finding, fail, warn
from hpresil.checks.per_gpu import PerGpuCheck
from hpresil.vocab import Action, Category, CheckResult
from hpresil.vocab.gpu import GpuSample, RecoveryAction
from hpresil.vocab.snapshot import Snapshot

ACTIONS = {
    RecoveryAction.GPU_RESET: Action.RESET_GPU,
    RecoveryAction.NODE_REBOOT: Action.REBOOT,
    RecoveryAction.DRAIN_P2P: Action.DRAIN,
    RecoveryAction.DRAIN_AND_RESET: Action.RESET_GPU,
    RecoveryAction.RECOVER_IMEX_DOMAIN: Action.DRAIN,
    RecoveryAction.BUS_RESET: Action.RESET_GPU,
    RecoveryAction.SYSTEM_REBOOT: Action.REBOOT,
}


class RecoveryActionCheck(PerGpuCheck):
    name = "recovery_action"

    def judge(self, gpu: GpuSample, snapshot: Snapshot) -> CheckResult:
        value = gpu.recovery_action
        if value is None:
            return self.unavailable(gpu, snapshot, "recovery action field")
        known = value in RecoveryAction._value2member_map_
        name = RecoveryAction(value).name.lower() if known else str(value)
        evidence = {"recovery_action": value, "name": name}
        findings: list[Finding] = []
        if not known:
            findings.append(warn(f"unknown recovery action {value}", Category.UNKNOWN))
        elif value != RecoveryAction.NONE:
            text = f"the driver asks for recovery action {value} ({name})"
            findings.append(fail(text, ACTIONS[RecoveryAction(value)], Category.UNKNOWN))
        return self.verdict(gpu, snapshot, findings, "no recovery action pending", evidence)
