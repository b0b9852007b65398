"""``clock_events``: hardware clock slowdowns as a rate over a window.

Policy (gpu-health.md s3/s7, as gpud): HW slowdown, HW thermal slowdown or HW power
brake observed at >= 0.6 events per minute over 10 minutes fails the GPU: drain it
(THERMAL_POWER). An *event* is a sample in which the reason's bit is set, so the rate
is (samples with the bit in the window) / (window in minutes), like gpud's; with the
agent polling every 5 s, 0.6/min over 10 min is 6 of 120 samples (30 s throttled).
A watched reason active now, below that rate, is a WARN.

The check is pure: the samples come from the snapshot's
:class:`~hpresil.adapters.gpu.history.GpuHistory` fact, kept by the collector-side
:class:`~hpresil.adapters.gpu.history.GpuHistoryRecorder`. Without that fact every
GPU is UNKNOWN. Cumulative slowdown time (driver 550+) is added as evidence.
"""

from __future__ import annotations

from typing import Any

from hpresil.adapters.gpu.history import GpuHistory, Timed, increase
from hpresil.checks.finding import Finding, fail, warn
from hpresil.checks.per_gpu import PerGpuCheck
from hpresil.config.checks import ClockEventsConfig
from hpresil.vocab import Action, Category, CheckResult, Status
from hpresil.vocab.gpu import ClockReason, GpuSample, reason_names
from hpresil.vocab.snapshot import Snapshot


class ClockEventsCheck(PerGpuCheck):
    name = "clock_events"

    def __init__(self, config: ClockEventsConfig | None = None) -> None:
        self.config = config or ClockEventsConfig()
        unknown = [r for r in self.config.reasons if r.upper() not in ClockReason.__members__]
        if unknown:
            valid = ", ".join(n.lower() for n in ClockReason.__members__)
            raise ValueError(f"unknown clock event reason {unknown[0]!r} (valid: {valid})")
        self._bits = {r: int(ClockReason[r.upper()]) for r in self.config.reasons}

    def judge(self, gpu: GpuSample, snapshot: Snapshot) -> CheckResult:
        history = snapshot.fact(GpuHistory)
        if history is None:
            why = snapshot.fact_error(GpuHistory) or "no GpuHistory fact source configured"
            return self.result(
                gpu, snapshot, Status.UNKNOWN, f"{gpu.where}: no sample history ({why})"
            )
        events = gpu.clock_events
        if events is None:
            return self.unavailable(gpu, snapshot, "clock event reasons")
        points = history.of(gpu, self.config.window_s) or (Timed(0.0, gpu),)
        counts = {r: sum(1 for p in points if _mask(p) & bit) for r, bit in self._bits.items()}
        minutes = self.config.window_s / 60.0
        evidence: dict[str, Any] = {
            "active": reason_names(events.reasons),
            "events": counts,
            "per_min": {r: round(c / minutes, 3) for r, c in counts.items()},
            "samples": len(points),
            "window_s": self.config.window_s,
            **_throttled_s(points),
        }
        findings = self._findings(events.reasons, counts, minutes)
        return self.verdict(gpu, snapshot, findings, "no hardware slowdown", evidence)

    def _findings(self, now: int, counts: dict[str, int], minutes: float) -> list[Finding]:
        limit = self.config.max_events_per_min
        over = [r for r, c in counts.items() if c / minutes >= limit]
        if over:
            text = f"{', '.join(over)} at >= {limit}/min over {minutes:g} min"
            return [fail(text, Action.DRAIN, Category.THERMAL_POWER)]
        active = [r for r, bit in self._bits.items() if now & bit]
        if active:
            return [warn(f"{', '.join(active)} active", Category.THERMAL_POWER)]
        return []


def _mask(point: Timed) -> int:
    events = point.sample.clock_events
    return events.reasons if events is not None else 0


def _throttled_s(points: tuple[Timed, ...]) -> dict[str, Any]:
    """Seconds of hardware slowdown the driver counted within the window."""
    out: dict[str, Any] = {}
    for name in ("hw_thermal_us", "hw_power_brake_us"):
        series = []
        for p in points:
            counters = p.sample.clock_events.counters if p.sample.clock_events else None
            series.append((p.at, getattr(counters, name) if counters else None))
        grown = increase(series)
        if grown is not None:
            out[name.replace("_us", "_s")] = round(grown[0] / 1e6, 3)
    return out
