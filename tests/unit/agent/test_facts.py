"""Fact sources: collected once per tick under a timeout, failures become fact errors."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from hpresil.host.collector import Collector
from hpresil.vocab.gpu import GpuSample


class NoGpus:
    def devices(self) -> list[GpuSample]:
        return []

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class PortFacts:
    up: int


class Ports:
    name = "ports"
    kind = PortFacts
    timeout_s = 1.0

    def collect(self) -> PortFacts:
        return PortFacts(up=8)


class Broken:
    name = "broken"
    kind = int
    timeout_s = 1.0

    def collect(self) -> int:
        raise OSError("sysfs went away")


class Hangs:
    name = "hangs"
    kind = str
    timeout_s = 0.1

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def collect(self) -> str:
        self.calls += 1
        self.release.wait(10)
        return "late"


def test_facts_are_keyed_by_type_and_failures_recorded() -> None:
    snap = Collector("n1", NoGpus(), sources=[Ports(), Broken()]).collect()
    assert snap.fact(PortFacts) == PortFacts(up=8)
    assert snap.fact(int) is None and snap.fact_error(int) == "sysfs went away"
    assert snap.fact_error(PortFacts) is None


def test_a_hung_source_times_out_and_is_not_started_twice() -> None:
    hangs = Hangs()
    collector = Collector("n1", NoGpus(), sources=[hangs])
    first = collector.collect()
    assert first.fact(str) is None and "did not return" in (first.fact_error(str) or "")
    second = collector.collect()
    assert "still running" in (second.fact_error(str) or "")
    assert hangs.calls == 1
    hangs.release.set()
