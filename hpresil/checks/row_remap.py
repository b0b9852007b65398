"""``row_remap``: HBM row remapping (A100 and later).

Policy (gpu-health.md s3/s7; Azure, gpud, Autopilot, GCM, NVSentinel agree): a
remap *pending* needs a GPU reset to take effect: drain, reset when idle (HBM_ECC).
A remap *failure* means the bank has no spare rows left: the GPU needs a reset and
field diagnostics, then RMA if it persists (NVIDIA's XID 64 action is RESET_GPU).
``uncorrectable_warn`` or more rows remapped for uncorrectable errors is DCGM's WARN.
GPUs without row remapping (pre-Ampere; MIG with active instances) are UNSUPPORTED.
"""

from __future__ import annotations

from hpresil.checks.finding import fail, warn
from hpresil.checks.per_gpu import PerGpuCheck
from hpresil.config.checks import RowRemapConfig
from hpresil.vocab import Action, Category, CheckResult
from hpresil.vocab.gpu import GpuSample
from hpresil.vocab.snapshot import Snapshot


class RowRemapCheck(PerGpuCheck):
    name = "row_remap"

    def __init__(self, config: RowRemapConfig | None = None) -> None:
        self.config = config or RowRemapConfig()

    def judge(self, gpu: GpuSample, snapshot: Snapshot) -> CheckResult:
        rows = gpu.row_remap
        if rows is None:
            return self.unavailable(gpu, snapshot, "row remapping")
        evidence = {
            "correctable": rows.correctable,
            "uncorrectable": rows.uncorrectable,
            "pending": rows.pending,
            "failure": rows.failure,
        }
        findings = []
        if rows.failure:
            text = "row remapping failed (no spare rows): reset, diagnostics, RMA if it recurs"
            findings.append(fail(text, Action.RESET_GPU, Category.HBM_ECC))
        if rows.pending:
            text = "row remap pending: reset the GPU when idle"
            findings.append(fail(text, Action.DRAIN, Category.HBM_ECC))
        if rows.uncorrectable >= self.config.uncorrectable_warn:
            text = f"{rows.uncorrectable} rows remapped for uncorrectable errors"
            findings.append(warn(text, Category.HBM_ECC))
        ok = f"{rows.correctable + rows.uncorrectable} rows remapped, none pending"
        return self.verdict(gpu, snapshot, findings, ok, evidence)
