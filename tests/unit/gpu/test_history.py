"""GpuHistoryRecorder (backend wrapper and fact source) and the counter arithmetic."""

from __future__ import annotations

from dataclasses import replace

from hpresil.adapters.gpu.history import GpuHistory, GpuHistoryRecorder, increase
from hpresil.host.collector import Collector
from hpresil.vocab.gpu import GpuSample
from tests.unit.gpu.samples import h100s


class Backend:
    def __init__(self) -> None:
        self.gpus = list(h100s())
        self.closed = False

    def devices(self) -> list[GpuSample]:
        return list(self.gpus)

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_recorder_passes_samples_through_and_remembers_them() -> None:
    backend, clock = Backend(), Clock()
    recorder = GpuHistoryRecorder(backend, retention_s=60, clock=clock)
    for _ in range(3):
        assert recorder.devices() == backend.gpus
        clock.now += 5
    history = recorder.collect()
    points = history.of(backend.gpus[2])
    assert [p.at for p in points] == [1000.0, 1005.0, 1010.0]
    assert points[-1].sample == backend.gpus[2]
    recorder.close()
    assert backend.closed


def test_old_samples_and_vanished_gpus_are_forgotten() -> None:
    backend, clock = Backend(), Clock()
    recorder = GpuHistoryRecorder(backend, retention_s=30, clock=clock)
    recorder.devices()
    backend.gpus = backend.gpus[:4]
    for _ in range(7):
        clock.now += 5
        recorder.devices()
    history = recorder.collect()
    assert len(history.series) == 4
    assert [p.at for p in history.of(backend.gpus[0])] == [1010.0 + 5 * i for i in range(6)]


def test_max_samples_bounds_memory() -> None:
    backend, clock = Backend(), Clock()
    recorder = GpuHistoryRecorder(backend, max_samples=3, clock=clock)
    for _ in range(10):
        clock.now += 1
        recorder.devices()
    assert len(recorder.collect().of(backend.gpus[0])) == 3


def test_window_is_relative_to_the_latest_sample() -> None:
    gpu = h100s()[0]
    history = GpuHistory.build((t, [gpu]) for t in (0.0, 100.0, 200.0, 300.0))
    assert [p.at for p in history.of(gpu, 150)] == [200.0, 300.0]
    assert history.of(h100s("other")[0]) == ()


def test_the_collector_gets_the_fact_of_the_same_tick() -> None:
    backend, clock = Backend(), Clock()
    recorder = GpuHistoryRecorder(backend, clock=clock)
    collector = Collector("node1", recorder, sources=[recorder])
    collector.collect()
    clock.now += 5
    backend.gpus[1] = replace(backend.gpus[1], temperature_c=80)
    snapshot = collector.collect()
    history = snapshot.fact(GpuHistory)
    assert history is not None
    assert history.of(snapshot.gpus[1])[-1].sample.temperature_c == 80
    assert len(history.of(snapshot.gpus[1])) == 2


def test_increase_of_a_counter() -> None:
    assert increase([(0.0, 5), (5.0, 5), (10.0, 9)]) == (4, 10.0)
    assert increase([(0.0, 5), (5.0, None), (10.0, 6)]) == (1, 10.0)
    assert increase([(0.0, 100), (5.0, 3), (10.0, 4)]) == (4, 10.0)  # reset: 3 new, then 1
    assert increase([(0.0, 5)]) is None
    assert increase([(0.0, None), (5.0, None)]) is None


def test_history_shares_unchanged_link_records_between_samples() -> None:
    from dataclasses import replace as _replace

    from hpresil.adapters.gpu.history import GpuHistoryRecorder
    from hpresil.vocab.gpu import NvLink

    links = tuple(NvLink(link=i, active=True) for i in range(18))
    first = _sample_with_links(links)
    same = _sample_with_links(tuple(NvLink(link=i, active=True) for i in range(18)))
    grown = _replace(same, nvlink=(NvLink(link=0, active=True, replay=3), *links[1:]))
    recorder = GpuHistoryRecorder(_NoBackend())
    recorder.record([first], 0.0)
    recorder.record([same], 5.0)
    recorder.record([grown], 10.0)
    (series,) = recorder.collect().series.values()
    assert series[1].sample.nvlink is series[0].sample.nvlink  # equal: one copy kept
    assert series[2].sample.nvlink == grown.nvlink  # a change is kept as it is
    assert series[2].sample.nvlink is not series[0].sample.nvlink


class _NoBackend:
    def devices(self) -> list[object]:
        return []

    def close(self) -> None:
        pass


def _sample_with_links(links: tuple[object, ...]) -> object:
    from hpresil.vocab import GpuIdentity
    from hpresil.vocab.gpu import GpuSample

    return GpuSample(identity=GpuIdentity(index=0, uuid="GPU-1"), nvlink=links)  # type: ignore[arg-type]
