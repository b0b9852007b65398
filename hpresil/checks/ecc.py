"""``ecc``: memory ECC errors per GPU.

Policy (gpu-health.md s3/s7):

- any volatile uncorrected ECC error fails the GPU (as GCM and DCGM): it needs a
  reset, then diagnostics (RESET_GPU; SRAM_ECC when only SRAM counted them, else
  HBM_ECC);
- correctable errors above Azure's H100 limits, DRAM > 2e7 or SRAM > 1e4 (volatile
  or aggregate, whichever is higher), and the driver's own SRAM threshold flag, fail
  it with a drain: corrected errors at that rate predict uncorrectable ones;
- ECC switched off on a GPU that has it is a WARN (``require_enabled``).

A GPU without ECC counters is UNSUPPORTED, never unhealthy; a counter that could not
be read is UNKNOWN. Lost GPUs are left to ``gpu_presence``.
"""

from __future__ import annotations

from typing import Any

from hpresil.checks.finding import Finding, fail, warn
from hpresil.checks.per_gpu import PerGpuCheck
from hpresil.config.checks import EccConfig
from hpresil.vocab import Action, Category, CheckResult
from hpresil.vocab.gpu import EccInfo, GpuSample
from hpresil.vocab.snapshot import Snapshot


class EccCheck(PerGpuCheck):
    name = "ecc"

    def __init__(self, config: EccConfig | None = None) -> None:
        self.config = config or EccConfig()

    def judge(self, gpu: GpuSample, snapshot: Snapshot) -> CheckResult:
        ecc = gpu.ecc
        volatile = ecc.volatile if ecc is not None else None
        count = volatile.uncorrected if volatile is not None else None
        evidence: dict[str, Any] = {
            "uncorrected_volatile": count,
            "corrected_volatile": volatile.corrected if volatile is not None else None,
            **_details(ecc),
        }
        if ecc is not None and ecc.enabled is False:
            return self._disabled(gpu, snapshot, evidence)
        if count is None:
            return self.unavailable(gpu, snapshot, "ECC counters", evidence)
        findings = self._uncorrected(count, ecc) + self._corrected(ecc)
        return self.verdict(gpu, snapshot, findings, "no uncorrected ECC errors", evidence)

    def _disabled(
        self, gpu: GpuSample, snapshot: Snapshot, evidence: dict[str, Any]
    ) -> CheckResult:
        if not self.config.require_enabled:
            return self.unavailable(gpu, snapshot, "ECC counters (ECC disabled)", evidence)
        findings = [warn("ECC is disabled", Category.HBM_ECC)]
        return self.verdict(gpu, snapshot, findings, "", evidence)

    def _uncorrected(self, count: int, ecc: EccInfo | None) -> list[Finding]:
        if count <= 0:
            return []
        vol = ecc.volatile if ecc is not None else None
        sram_only = vol is not None and bool(vol.sram_uncorrected) and not vol.dram_uncorrected
        category = Category.SRAM_ECC if sram_only else Category.HBM_ECC
        text = f"{count} uncorrected ECC errors since the last reset"
        return [fail(text, Action.RESET_GPU, category)]

    def _corrected(self, ecc: EccInfo | None) -> list[Finding]:
        if ecc is None:
            return []
        cfg, found = self.config, []
        dram = _highest(ecc, "dram_corrected")
        sram = _highest(ecc, "sram_corrected")
        if dram is not None and dram > cfg.dram_corrected_max:
            text = f"{dram} corrected DRAM ECC errors (limit {cfg.dram_corrected_max})"
            found.append(fail(text, Action.DRAIN, Category.HBM_ECC))
        if sram is not None and sram > cfg.sram_corrected_max:
            text = f"{sram} corrected SRAM ECC errors (limit {cfg.sram_corrected_max})"
            found.append(fail(text, Action.DRAIN, Category.SRAM_ECC))
        if ecc.sram_threshold_exceeded:
            found.append(fail("SRAM error threshold exceeded", Action.DRAIN, Category.SRAM_ECC))
        return found


def _highest(ecc: EccInfo, name: str) -> int | None:
    values = [getattr(c, name) for c in (ecc.volatile, ecc.aggregate) if c is not None]
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _details(ecc: EccInfo | None) -> dict[str, Any]:
    if ecc is None:
        return {}
    agg = ecc.aggregate
    return {
        "enabled": ecc.enabled,
        "uncorrected_aggregate": agg.uncorrected if agg else None,
        "corrected_aggregate": agg.corrected if agg else None,
        "dram_corrected": _highest(ecc, "dram_corrected"),
        "sram_corrected": _highest(ecc, "sram_corrected"),
        "sram_threshold_exceeded": ecc.sram_threshold_exceeded,
    }
