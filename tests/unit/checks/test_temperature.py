"""The temperature check against the device's own thresholds."""

from __future__ import annotations

from dataclasses import replace

from hpresil.checks.temperature import TemperatureCheck
from hpresil.config.checks import TemperatureConfig
from hpresil.vocab import Action, Category, Status
from hpresil.vocab.gpu import Thermal
from tests.unit.gpu.samples import A100, BLACKWELL, T4, h100s, real, snap


def test_real_gpus_and_the_doubles_h100s_are_cool() -> None:
    for gpus in (real(A100), real(T4), real(BLACKWELL), h100s()):
        results = TemperatureCheck().evaluate(snap(gpus))
        assert {r.status for r in results} == {Status.OK}, results


def test_above_gpu_max_drains_as_thermal() -> None:
    (a100,) = real(A100)  # max operating 85 C, slowdown 89 C
    (r,) = TemperatureCheck().evaluate(snap([replace(a100, temperature_c=86)]))
    assert (r.status, r.action, r.category) == (Status.FAIL, Action.DRAIN, Category.THERMAL_POWER)
    assert "85 C" in r.summary and r.evidence["gpu_max_c"] == 85
    (s,) = TemperatureCheck().evaluate(snap([replace(a100, temperature_c=89)]))
    assert "slowdown" in s.summary


def test_near_the_maximum_warns() -> None:
    (a100,) = real(A100)
    (r,) = TemperatureCheck().evaluate(snap([replace(a100, temperature_c=80)]))
    assert (r.status, r.action) == (Status.WARN, Action.WATCH)
    (ok,) = TemperatureCheck(TemperatureConfig(warn_margin_c=2)).evaluate(
        snap([replace(a100, temperature_c=80)])
    )
    assert ok.status is Status.OK


def test_hot_memory_drains() -> None:
    gpu = h100s()[0]
    assert gpu.thermal is not None
    hot = replace(gpu, thermal=replace(gpu.thermal, memory_c=96))
    (r,) = TemperatureCheck().evaluate(snap([hot]))
    assert r.status is Status.FAIL and "memory 96 C" in r.summary


def test_without_thresholds_config_fallbacks_or_unsupported() -> None:
    gpu = replace(h100s()[0], thermal=Thermal(), temperature_c=90)
    (r,) = TemperatureCheck().evaluate(snap([gpu]))
    assert r.status is Status.UNSUPPORTED
    (r2,) = TemperatureCheck(TemperatureConfig(gpu_max_c=85)).evaluate(snap([gpu]))
    assert r2.status is Status.FAIL
    (r3,) = TemperatureCheck().evaluate(snap([replace(gpu, temperature_c=None)]))
    assert r3.status is Status.UNSUPPORTED
