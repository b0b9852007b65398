"""``temperature``: the GPU and its memory against the device's own thresholds.

Policy (gpu-health.md s3/s7, as gpud): above the GPU's maximum operating temperature
(NVML's GPU_MAX) or its memory's (MEM_MAX), or at the slowdown threshold where the
hardware throttles, the GPU is degraded: drain it (THERMAL_POWER) so that cooling
can be looked at. Within ``warn_margin_c`` of the maximum is a WARN. The thresholds
are the device's own; ``gpu_max_c``/``mem_max_c`` are fallbacks for devices that do
not report them. No temperature, or no threshold to compare with: UNSUPPORTED.
"""

from __future__ import annotations

from typing import Any

from hpresil.checks.finding import Finding, fail, warn
from hpresil.checks.per_gpu import PerGpuCheck
from hpresil.config.checks import TemperatureConfig
from hpresil.vocab import Action, Category, CheckResult
from hpresil.vocab.gpu import GpuSample, Thermal
from hpresil.vocab.snapshot import Snapshot


class TemperatureCheck(PerGpuCheck):
    name = "temperature"

    def __init__(self, config: TemperatureConfig | None = None) -> None:
        self.config = config or TemperatureConfig()

    def judge(self, gpu: GpuSample, snapshot: Snapshot) -> CheckResult:
        th = gpu.thermal or Thermal()
        gpu_max = th.gpu_max_c if th.gpu_max_c is not None else self.config.gpu_max_c
        mem_max = th.mem_max_c if th.mem_max_c is not None else self.config.mem_max_c
        evidence: dict[str, Any] = {
            "gpu_c": gpu.temperature_c,
            "memory_c": th.memory_c,
            "gpu_max_c": gpu_max,
            "mem_max_c": mem_max,
            "slowdown_c": th.slowdown_c,
            "shutdown_c": th.shutdown_c,
        }
        temp = gpu.temperature_c
        if temp is None:
            return self.unavailable(gpu, snapshot, "temperature", evidence)
        if gpu_max is None and mem_max is None and th.slowdown_c is None:
            return self.unavailable(gpu, snapshot, "temperature thresholds", evidence)
        findings = self._gpu(temp, gpu_max, th.slowdown_c) + _memory(th.memory_c, mem_max)
        return self.verdict(gpu, snapshot, findings, f"{temp} C", evidence)

    def _gpu(self, temp: int, gpu_max: int | None, slowdown: int | None) -> list[Finding]:
        if slowdown is not None and temp >= slowdown:
            text = f"{temp} C, at its slowdown threshold {slowdown} C"
            return [fail(text, Action.DRAIN, Category.THERMAL_POWER)]
        if gpu_max is not None and temp > gpu_max:
            text = f"{temp} C, above its maximum operating temperature {gpu_max} C"
            return [fail(text, Action.DRAIN, Category.THERMAL_POWER)]
        if gpu_max is not None and temp >= gpu_max - self.config.warn_margin_c:
            return [warn(f"{temp} C, near its maximum {gpu_max} C", Category.THERMAL_POWER)]
        return []


def _memory(temp: int | None, mem_max: int | None) -> list[Finding]:
    if temp is None or mem_max is None or temp <= mem_max:
        return []
    text = f"memory {temp} C, above its maximum operating temperature {mem_max} C"
    return [fail(text, Action.DRAIN, Category.THERMAL_POWER)]
