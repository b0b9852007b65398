"""The power check: power brake and draw above the enforced limit."""

from __future__ import annotations

from dataclasses import replace

from hpresil.checks.power import PowerCheck
from hpresil.vocab import Action, Category, Status
from hpresil.vocab.gpu import ClockEvents, ClockReason, Power
from tests.unit.gpu.samples import REAL, h100s, real, snap


def test_real_gpus_and_the_doubles_h100s_pass() -> None:
    for gpus in [*(real(n) for n in REAL), h100s()]:
        assert {r.status for r in PowerCheck().evaluate(snap(gpus))} == {Status.OK}


def test_power_brake_warns() -> None:
    gpu = replace(h100s()[0], clock_events=ClockEvents(reasons=int(ClockReason.HW_POWER_BRAKE)))
    (r,) = PowerCheck().evaluate(snap([gpu]))
    assert (r.status, r.action, r.category) == (Status.WARN, Action.WATCH, Category.THERMAL_POWER)
    assert r.evidence["power_brake"] is True


def test_draw_above_the_limit_warns() -> None:
    gpu = h100s()[0]
    (ok,) = PowerCheck().evaluate(snap([replace(gpu, power=Power(draw_w=730.0, limit_w=700.0))]))
    assert ok.status is Status.OK  # within 5 %
    (r,) = PowerCheck().evaluate(snap([replace(gpu, power=Power(draw_w=760.0, limit_w=700.0))]))
    assert r.status is Status.WARN and "760 W" in r.summary


def test_no_readings_is_unsupported() -> None:
    gpu = replace(h100s()[0], power=None, clock_events=None)
    (r,) = PowerCheck().evaluate(snap([gpu]))
    assert r.status is Status.UNSUPPORTED
