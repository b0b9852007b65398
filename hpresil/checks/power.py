"""``power``: power brake and draw above the enforced limit.

Policy (gpu-health.md s3/s7): the HW power brake asserted (an external signal,
typically the chassis' power supplies) or a draw more than ``over_limit_pct`` above
the enforced limit is a WARN to watch (THERMAL_POWER); a sustained brake is drained
by ``clock_events`` through its rate. No power readings: UNSUPPORTED.
"""

from __future__ import annotations

from typing import Any

from hpresil.checks.finding import warn
from hpresil.checks.per_gpu import PerGpuCheck
from hpresil.config.checks import PowerConfig
from hpresil.vocab import Category, CheckResult
from hpresil.vocab.gpu import ClockReason, GpuSample, Power
from hpresil.vocab.snapshot import Snapshot


class PowerCheck(PerGpuCheck):
    name = "power"

    def __init__(self, config: PowerConfig | None = None) -> None:
        self.config = config or PowerConfig()

    def judge(self, gpu: GpuSample, snapshot: Snapshot) -> CheckResult:
        power, events = gpu.power or Power(), gpu.clock_events
        brake = None if events is None else bool(events.reasons & ClockReason.HW_POWER_BRAKE)
        evidence: dict[str, Any] = {
            "draw_w": power.draw_w,
            "limit_w": power.limit_w,
            "power_brake": brake,
        }
        if power.draw_w is None and brake is None:
            return self.unavailable(gpu, snapshot, "power readings", evidence)
        findings = []
        if brake:
            findings.append(warn("HW power brake active", Category.THERMAL_POWER))
        if power.draw_w is not None and power.limit_w:
            allowed = power.limit_w * (1 + self.config.over_limit_pct / 100)
            if power.draw_w > allowed:
                text = f"drawing {power.draw_w:g} W, above its {power.limit_w:g} W limit"
                findings.append(warn(text, Category.THERMAL_POWER))
        ok = f"{power.draw_w:g} W" if power.draw_w is not None else "no power brake"
        return self.verdict(gpu, snapshot, findings, ok, evidence)
