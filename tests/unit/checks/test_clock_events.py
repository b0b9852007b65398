"""The clock_events check: hardware slowdown rates over a window of samples."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hpresil.checks.clock_events import ClockEventsCheck
from hpresil.config.checks import ClockEventsConfig
from hpresil.vocab import Action, Category, Status
from hpresil.vocab.gpu import ClockCounters, ClockEvents, ClockReason, GpuSample
from tests.unit.gpu.samples import A100, h100s, real, snap, steady, ticks

SLOW = int(ClockReason.HW_SLOWDOWN | ClockReason.HW_THERMAL)


def _reasons(gpu: GpuSample, mask: int, hw_thermal_us: int | None = None) -> GpuSample:
    counters = None if hw_thermal_us is None else ClockCounters(hw_thermal_us=hw_thermal_us)
    return replace(gpu, clock_events=ClockEvents(reasons=mask, counters=counters))


def _series(active_ticks: set[int], n: int = 120, every_s: float = 5.0) -> tuple:  # type: ignore[type-arg]
    """GPU 0 of eight H100s over ``n`` ticks, slowed down in ``active_ticks``."""
    base = h100s()
    out = []
    for i in range(n):
        mask = SLOW if i in active_ticks else int(ClockReason.GPU_IDLE)
        out.append((_reasons(base[0], mask), *base[1:]))
    return tuple(out)


def test_quiet_gpus_pass() -> None:
    results = ClockEventsCheck().evaluate(snap(h100s(), steady(h100s())))
    assert {r.status for r in results} == {Status.OK}
    (a100,) = ClockEventsCheck().evaluate(snap(real(A100), steady(real(A100))))
    assert a100.status is Status.OK


def test_six_slow_samples_in_ten_minutes_fail() -> None:
    series = _series({10, 20, 30, 40, 50, 60})  # 6 of 120 samples, 5 s apart
    history = ticks(*series)
    r = ClockEventsCheck().evaluate(snap(series[-1], history))[0]
    assert (r.status, r.action, r.category) == (Status.FAIL, Action.DRAIN, Category.THERMAL_POWER)
    assert r.evidence["events"]["hw_thermal"] == 6 and r.evidence["per_min"]["hw_thermal"] == 0.6


def test_five_slow_samples_only_watch_when_active_now() -> None:
    series = _series({10, 20, 30, 40, 119})
    r = ClockEventsCheck().evaluate(snap(series[-1], ticks(*series)))[0]
    assert (r.status, r.action) == (Status.WARN, Action.WATCH)
    quiet = _series({10, 20, 30, 40, 50})
    assert ClockEventsCheck().evaluate(snap(quiet[-1], ticks(*quiet)))[0].status is Status.OK


def test_events_older_than_the_window_do_not_count() -> None:
    series = _series(set(range(0, 20)), n=200)  # slowed down 15 minutes ago
    r = ClockEventsCheck().evaluate(snap(series[-1], ticks(*series)))[0]
    assert r.status is Status.OK and r.evidence["samples"] == 120


def test_config_changes_window_rate_and_reasons() -> None:
    series = _series({115, 116, 117, 118})
    history = ticks(*series)
    strict = ClockEventsCheck(ClockEventsConfig(window_s=60, max_events_per_min=2.0))
    assert strict.evaluate(snap(series[-1], history))[0].status is Status.FAIL
    other = ClockEventsCheck(ClockEventsConfig(reasons=("sw_power_cap",)))
    assert other.evaluate(snap(series[-1], history))[0].status is Status.OK
    with pytest.raises(ValueError, match="unknown clock event reason 'hot'"):
        ClockEventsCheck(ClockEventsConfig(reasons=("hot",)))


def test_driver_counted_slowdown_time_is_evidence() -> None:
    base = h100s()
    first = (_reasons(base[0], 0, hw_thermal_us=1_000_000), *base[1:])
    second = (_reasons(base[0], 0, hw_thermal_us=4_500_000), *base[1:])
    r = ClockEventsCheck().evaluate(snap(second, ticks(first, second)))[0]
    assert r.evidence["hw_thermal_s"] == 3.5


def test_without_history_every_gpu_is_unknown() -> None:
    results = ClockEventsCheck().evaluate(snap(h100s(), history_error="gpu_history: boom"))
    assert {r.status for r in results} == {Status.UNKNOWN} and "boom" in results[0].summary
    gone = replace(h100s()[0], clock_events=None)
    (r,) = ClockEventsCheck().evaluate(snap([gone], steady([gone])))
    assert r.status is Status.UNSUPPORTED
