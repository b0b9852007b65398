"""Recent GPU samples, so that pure checks can judge rates and counter deltas.

Some judgements need more than one tick: clock-event *rates* (>= 0.6 HW slowdown
events per minute over 10 minutes), NVLink and PCIe error counters that must not
*grow*. Checks stay pure by reading a :class:`GpuHistory` fact from the snapshot;
the state lives in :class:`GpuHistoryRecorder`, a wrapper around the GPU backend that
keeps every sample it hands out (with the time it got it) for ``retention_s``, and
that is also the :class:`~hpresil.vocab.snapshot.FactSource` of that fact. Wiring::

    recorder = GpuHistoryRecorder(open_backend(cfg.agent.gpu))
    collector = Collector(node, recorder, sources=[recorder, ...])

The collector queries the backend before it collects facts, so the fact of a tick
includes that tick's samples. Times are monotonic seconds from an injectable clock.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from hpresil.adapters.gpu.base import GpuBackend
from hpresil.vocab import GpuIdentity
from hpresil.vocab.gpu import GpuSample

RETENTION_S = 900.0  # longest window a check may ask for (15 min)
MAX_SAMPLES = 2000  # per GPU, whatever the polling interval


def gpu_key(identity: GpuIdentity) -> str:
    """A GPU's key across ticks: UUID, else PCI address, else index."""
    return identity.uuid or identity.pci_bus_id or f"index:{identity.index}"


@dataclass(frozen=True, slots=True)
class Timed:
    at: float  # monotonic seconds
    sample: GpuSample


@dataclass(frozen=True, slots=True)
class GpuHistory:
    """Recent samples per GPU, oldest first (a snapshot fact)."""

    series: Mapping[str, tuple[Timed, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def of(self, gpu: GpuSample | GpuIdentity, window_s: float | None = None) -> tuple[Timed, ...]:
        """The GPU's samples, or only those within ``window_s`` of its latest one."""
        ident = gpu.identity if isinstance(gpu, GpuSample) else gpu
        points = self.series.get(gpu_key(ident), ())
        if window_s is None or not points:
            return points
        start = points[-1].at - window_s
        return tuple(p for p in points if p.at > start)

    @classmethod
    def build(cls, timed: Iterable[tuple[float, Sequence[GpuSample]]]) -> GpuHistory:
        """A history from ``(time, samples)`` ticks: for tests and replays."""
        series: dict[str, list[Timed]] = {}
        for at, samples in timed:
            for s in samples:
                series.setdefault(gpu_key(s.identity), []).append(Timed(at, s))
        return cls(MappingProxyType({k: tuple(v) for k, v in series.items()}))


class GpuHistoryRecorder:
    """A GpuBackend that remembers what it answered, and the FactSource of it."""

    name = "gpu_history"
    kind = GpuHistory
    timeout_s = 1.0

    def __init__(
        self,
        backend: GpuBackend,
        *,
        retention_s: float = RETENTION_S,
        max_samples: int = MAX_SAMPLES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._retention = retention_s
        self._max = max_samples
        self._clock = clock
        self._series: dict[str, deque[Timed]] = {}
        self._lock = threading.Lock()

    def devices(self) -> list[GpuSample]:
        samples = self._backend.devices()
        self.record(samples, self._clock())
        return samples

    def close(self) -> None:
        self._backend.close()

    def record(self, samples: Sequence[GpuSample], at: float) -> None:
        with self._lock:
            for s in samples:
                series = self._series.setdefault(gpu_key(s.identity), deque(maxlen=self._max))
                series.append(Timed(at, _share(s, series[-1].sample if series else None)))
            horizon = at - self._retention
            for key in list(self._series):
                points = self._series[key]
                while points and points[0].at <= horizon:
                    points.popleft()
                if not points:
                    del self._series[key]

    def collect(self) -> GpuHistory:
        with self._lock:
            frozen = {k: tuple(v) for k, v in self._series.items()}
        return GpuHistory(MappingProxyType(frozen))


def _share(sample: GpuSample, previous: GpuSample | None) -> GpuSample:
    """``sample``, holding the previous sample's identity and NVLink records where they
    are equal: a GPU's 18 link records rarely change, and the history keeps minutes."""
    if previous is None:
        return sample
    same_links = sample.nvlink is not None and sample.nvlink == previous.nvlink
    same_identity = sample.identity == previous.identity
    if not (same_links or same_identity):
        return sample
    return replace(
        sample,
        nvlink=previous.nvlink if same_links else sample.nvlink,
        identity=previous.identity if same_identity else sample.identity,
    )


def increase(points: Sequence[tuple[float, int | None]]) -> tuple[int, float] | None:
    """How much a cumulative counter grew over ``points`` (time, value), and over how
    many seconds. A drop (a GPU reset clears volatile counters) counts the new value
    as growth since the reset. None with fewer than two known values."""
    known = [(t, v) for t, v in points if v is not None]
    if len(known) < 2:
        return None
    grown = 0
    for (_, before), (_, after) in itertools.pairwise(known):
        grown += after - before if after >= before else after
    return grown, known[-1][0] - known[0][0]
