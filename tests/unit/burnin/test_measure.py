"""measure(): warm-up excluded, batches until the duration, and the arithmetic."""

from __future__ import annotations

import pytest

from hpresil.burnin.kernel import MeasureError, copy_gbps, measure, tflops
from tests.unit.burnin.fakes import FakeKernel


def test_a_gemm_rate_is_two_n_cubed_flops_per_iteration() -> None:
    kernel = FakeKernel(tflops=2.0, gbps=1.0).setup(size=1000, dtype="bf16", copy_bytes=1)
    # 2 * 1000^3 flops at 2 TFLOPS: 1 ms per GEMM
    m = measure(kernel, "gemm", duration_s=1.0, warmup=3)
    assert m.seconds == pytest.approx(m.iterations * 1e-3)
    assert tflops(1000, m) == pytest.approx(2.0)
    assert m.rate(2 * 1000**3) == pytest.approx(2e12)


def test_copy_bandwidth_counts_the_read_and_the_write() -> None:
    one_gib = 1 << 30
    kernel = FakeKernel(tflops=1.0, gbps=4000.0).setup(size=16, dtype="bf16", copy_bytes=one_gib)
    m = measure(kernel, "copy", duration_s=0.5, warmup=2)
    assert copy_gbps(one_gib, m) == pytest.approx(4000.0)
    per_copy = m.seconds / m.iterations
    assert per_copy == pytest.approx(2 * one_gib / 4000e9)  # 0.54 ms for 1 GiB each way


def test_warm_up_iterations_are_timed_apart_and_left_out() -> None:
    kernel = FakeKernel(tflops=2.0, gbps=1.0, slow=3, slow_factor=100.0)
    kernel.setup(size=1000, dtype="bf16", copy_bytes=1)
    m = measure(kernel, "gemm", duration_s=1.0, warmup=3)
    assert m.warmup_iterations == 3
    assert m.warmup_seconds == pytest.approx(3 * 100 * 1e-3)  # cold cuBLAS, clocks ramping
    assert tflops(1000, m) == pytest.approx(2.0)  # the slow ones do not count


def test_a_slow_warm_up_would_drag_the_figure_down_if_it_counted() -> None:
    kernel = FakeKernel(tflops=2.0, gbps=1.0, slow=6, slow_factor=100.0)
    kernel.setup(size=1000, dtype="bf16", copy_bytes=1)
    m = measure(kernel, "gemm", duration_s=1.0, warmup=3)  # 3 slow ones left after warm-up
    assert tflops(1000, m) < 2.0 * 0.8


def test_iterations_run_in_batches_of_about_the_sync_interval() -> None:
    kernel = FakeKernel(tflops=2.0, gbps=1.0).setup(size=1000, dtype="bf16", copy_bytes=1)
    m = measure(kernel, "gemm", duration_s=0.2, warmup=4, sync_every_s=0.05)
    assert kernel.calls[0] == ("gemm", 4)
    assert {count for _, count in kernel.calls[1:]} == {50}  # 50 x 1 ms between syncs
    assert m.iterations == 200 and m.seconds == pytest.approx(0.2)


def test_batches_are_capped_and_at_least_one_runs() -> None:
    fast = FakeKernel(tflops=1e9, gbps=1.0).setup(size=16, dtype="bf16", copy_bytes=1)
    m = measure(fast, "gemm", duration_s=1e-20, warmup=1, max_batch=7)
    assert fast.calls[1:] == [("gemm", 7)]
    assert m.iterations == 7


def test_progress_rises_to_one() -> None:
    kernel = FakeKernel(tflops=2.0, gbps=1.0).setup(size=1000, dtype="bf16", copy_bytes=1)
    seen: list[float] = []
    measure(kernel, "gemm", duration_s=0.2, warmup=1, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 4


class Broken:
    device_name, pci_bus_id, dtype, size, copy_bytes = "x", None, "bf16", 16, 1

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run(self, op: str, count: int) -> float:
        return self.seconds

    def close(self) -> None: ...


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan")])
def test_a_kernel_that_reports_no_time_is_refused(seconds: float) -> None:
    with pytest.raises(MeasureError, match="gemm"):
        measure(Broken(seconds), "gemm", duration_s=1.0, warmup=1)


def test_measure_needs_a_warm_up() -> None:
    with pytest.raises(ValueError, match="warm-up"):
        measure(Broken(1.0), "gemm", duration_s=1.0, warmup=0)
