"""The collector: one GPU query per tick, bounded in time, expected count remembered."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from hpresil.errors import GpuError
from hpresil.host.collector import Collector
from hpresil.vocab import GpuIdentity, XidEvent
from hpresil.vocab.gpu import GpuSample
from hpresil.vocab.timeout import call_with_timeout

AT = datetime(2026, 3, 1, tzinfo=UTC)


class ScriptedBackend:
    def __init__(self, *answers: list[GpuSample] | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.release = threading.Event()

    def devices(self) -> list[GpuSample]:
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            if isinstance(answer, TimeoutError):
                self.release.wait(10)
                return []
            raise answer
        return answer

    def close(self) -> None:
        pass


def _gpus(n: int) -> list[GpuSample]:
    return [GpuSample(GpuIdentity(index=i, pci_bus_id=f"0000:{i:02x}:00")) for i in range(n)]


def test_expected_count_is_the_first_successful_count() -> None:
    backend = ScriptedBackend(GpuError("driver not loaded"), _gpus(8), _gpus(7))
    c = Collector("node1", backend, clock=lambda: AT)
    first = c.collect()
    assert first.gpu_error == "driver not loaded" and first.expected_gpus is None
    assert c.collect().expected_gpus == 8
    third = c.collect()
    assert (len(third.gpus), third.expected_gpus) == (7, 8)


def test_configured_expected_count_wins() -> None:
    snap = Collector("n", ScriptedBackend(_gpus(4)), expected_gpus=8).collect()
    assert snap.expected_gpus == 8


def test_snapshot_carries_the_events_and_the_last_known_gpus() -> None:
    event = XidEvent(xid=79, pci_bus_id="0000:03:00", seen_at=AT)
    c = Collector("n", ScriptedBackend(_gpus(8), GpuError("gone")), clock=lambda: AT)
    c.collect()
    snap = c.collect([event])
    assert snap.xid_events == (event,) and snap.gpus == () and snap.gpu_error == "gone"
    identity = snap.gpu_identity("00000000:03:00.0")
    assert identity is not None and identity.index == 3


def test_a_backend_bug_becomes_a_gpu_error_text() -> None:
    snap = Collector("n", ScriptedBackend(ZeroDivisionError("oops"))).collect()
    assert snap.gpu_error is not None and "ZeroDivisionError" in snap.gpu_error


def test_a_hung_query_is_bounded_and_not_started_twice() -> None:
    backend = ScriptedBackend(TimeoutError())
    c = Collector("n", backend, query_timeout_s=0.2)
    start = time.monotonic()
    first = c.collect()
    assert time.monotonic() - start < 2
    assert first.gpu_error == "GPU query did not answer within 0.2 s"
    second = c.collect()
    assert second.gpu_error is not None and "still running" in second.gpu_error
    assert backend.calls == 1
    backend.release.set()


def test_a_tick_with_events_waits_less_for_the_gpus() -> None:
    backend = ScriptedBackend(TimeoutError())
    c = Collector("n", backend, query_timeout_s=5.0, event_timeout_s=0.1)
    start = time.monotonic()
    snap = c.collect([XidEvent(xid=79, pci_bus_id="0000:03:00", seen_at=AT)])
    assert time.monotonic() - start < 1.0 and snap.xid_events
    backend.release.set()


def test_call_with_timeout_returns_and_reraises() -> None:
    assert call_with_timeout(lambda: 42, 1.0, "t") == 42
    empty: dict[str, int] = {}
    with pytest.raises(KeyError):
        call_with_timeout(lambda: empty["x"], 1.0, "t")
