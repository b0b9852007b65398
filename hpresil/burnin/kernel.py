"""What a GPU library must offer the burn-in, and the timing arithmetic on top of it.

A :class:`Kernel` is one GPU with its buffers allocated: ``run(op, count)`` runs a
GEMM or a device-to-device copy ``count`` times back to back and answers the
seconds it took, synchronised. :func:`measure` decides how many to run (warm-up,
then batches until the duration is reached) and never touches a library itself, so
tests drive it with a kernel whose timings they choose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from hpresil.config.burnin import Dtype
from hpresil.errors import HpresilError

Op = Literal["gemm", "copy"]
OnProgress = Callable[[float], None]  # share of the timed phase done, 0..1


class Kernel(Protocol):
    device_name: str  # as the driver names it: "NVIDIA H100 80GB HBM3"
    pci_bus_id: str | None  # normalised "dddd:bb:dd"
    dtype: Dtype  # what the GEMM runs in, after any fallback
    size: int  # N of the N x N GEMM
    copy_bytes: int  # bytes per copy

    def run(self, op: Op, count: int) -> float:
        """Run ``op`` ``count`` times; the seconds from before the first to after the
        last has finished on the device."""
        ...

    def close(self) -> None: ...


class GpuLibrary(Protocol):
    name: str  # "torch", "cupy"

    def device_count(self) -> int: ...

    def open(self, index: int, *, size: int, dtype: Dtype, copy_bytes: int) -> Kernel: ...


class MeasureError(HpresilError):
    """A kernel answered a duration that cannot be used."""


@dataclass(frozen=True)
class Measurement:
    iterations: int  # timed ones
    seconds: float
    warmup_iterations: int
    warmup_seconds: float

    def rate(self, work_per_iteration: float) -> float:
        """Work per second over the timed iterations (warm-up excluded)."""
        return work_per_iteration * self.iterations / self.seconds


def measure(
    kernel: Kernel,
    op: Op,
    *,
    duration_s: float,
    warmup: int,
    sync_every_s: float = 0.05,
    max_batch: int = 1000,
    progress: OnProgress | None = None,
) -> Measurement:
    """Warm up with ``warmup`` untimed iterations, then time batches of iterations
    until ``duration_s`` is reached (at least one batch). A batch lasts about
    ``sync_every_s`` (estimated from the warm-up), so synchronising costs little."""
    if warmup < 1:
        raise ValueError("measure needs at least one warm-up iteration")
    warm_s = _checked(kernel.run(op, warmup), op)
    batch = max(1, min(max_batch, int(sync_every_s / (warm_s / warmup))))
    iterations, seconds = 0, 0.0
    while iterations == 0 or seconds < duration_s:
        seconds += _checked(kernel.run(op, batch), op)
        iterations += batch
        if progress is not None:
            progress(min(seconds / duration_s, 1.0))
    return Measurement(iterations, seconds, warmup, warm_s)


def gemm_flops(size: int) -> float:
    """Floating-point operations of one N x N by N x N GEMM: N^3 multiply-adds."""
    return 2.0 * size**3


def copy_traffic(nbytes: int) -> float:
    """Bytes one device-to-device copy moves through memory: read plus write."""
    return 2.0 * nbytes


def tflops(size: int, m: Measurement) -> float:
    return m.rate(gemm_flops(size)) / 1e12


def copy_gbps(nbytes: int, m: Measurement) -> float:
    return m.rate(copy_traffic(nbytes)) / 1e9


def _checked(seconds: float, op: Op) -> float:
    if not seconds > 0:  # also NaN
        raise MeasureError(f"{op}: the kernel reported {seconds!r} s")
    return seconds
