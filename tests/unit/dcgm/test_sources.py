"""The DCGM fact sources: paced health queries, idle-only diagnostics."""

from __future__ import annotations

import pytest

from hpresil.dcgm.dcgmi import Dcgmi, DcgmUnavailable, HealthWatchesOff
from hpresil.dcgm.health import parse_health
from hpresil.dcgm.parse import parse_diag
from hpresil.dcgm.sources import DcgmDiag, DcgmDiagSource, DcgmHealth, DcgmHealthSource
from hpresil.host.collector import Collector
from tests.unit.dcgm.fakes import FakeAdapter, FakeDcgmi, fixture


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


HEALTHY = parse_health(fixture("health_vc_healthy.json"))


def test_health_is_queried_at_most_once_per_interval() -> None:
    adapter, clock = FakeAdapter(HEALTHY, HEALTHY), Clock()
    source = DcgmHealthSource(adapter, interval_s=60, clock=clock)
    assert source.collect() == DcgmHealth(report=HEALTHY)
    clock.now += 59
    source.collect()
    assert adapter.calls == ["health"]
    clock.now += 1
    source.collect()
    assert adapter.calls == ["health", "health"]


def test_unavailable_dcgm_is_a_fact_not_an_error() -> None:
    source = DcgmHealthSource(FakeAdapter(DcgmUnavailable("dcgmi not found")))
    assert source.collect() == DcgmHealth(unavailable="dcgmi not found")


def test_watches_are_enabled_once_when_off() -> None:
    off = HealthWatchesOff("off")
    adapter = FakeAdapter(off, off)
    source = DcgmHealthSource(adapter, interval_s=0)
    with pytest.raises(HealthWatchesOff, match="hpresil set them"):
        source.collect()
    with pytest.raises(HealthWatchesOff, match=r"^off$"):
        source.collect()
    assert adapter.calls == ["health", "enable", "health"]


def test_watches_are_left_alone_when_configured_so() -> None:
    adapter = FakeAdapter(HealthWatchesOff("off"))
    with pytest.raises(HealthWatchesOff):
        DcgmHealthSource(adapter, enable_watches=False).collect()
    assert adapter.calls == ["health"]


def test_a_failed_query_is_a_fact_error_in_the_snapshot(fake_dcgmi: FakeDcgmi) -> None:
    fake_dcgmi.prints("garbage\n", rc=1)

    class NoGpus:
        def devices(self) -> list[object]:
            return []

        def close(self) -> None:
            pass

    collector = Collector("n1", NoGpus(), sources=[DcgmHealthSource(Dcgmi())])  # type: ignore[arg-type]
    snap = collector.collect()
    assert snap.fact(DcgmHealth) is None
    assert "no DCGM health report" in (snap.fact_error(DcgmHealth) or "")


def test_diag_runs_only_when_idle() -> None:
    report = parse_diag(fixture("dcgm3_vc_r2_pass.json"))
    adapter = FakeAdapter(report)
    idle = [False]
    source = DcgmDiagSource(adapter, lambda: idle[0], level=3, iterations=2)
    assert source.collect() == DcgmDiag(level=3, busy=True)
    assert adapter.calls == []
    idle[0] = True
    assert source.collect() == DcgmDiag(level=3, report=report)
    assert adapter.calls == ["diag -r 3 x2"]
    assert source.timeout_s > adapter.diag_timeout(3, 2)


def test_diag_unavailable() -> None:
    source = DcgmDiagSource(FakeAdapter(DcgmUnavailable("no host engine")), lambda: True, 1)
    assert source.collect() == DcgmDiag(level=1, unavailable="no host engine")
