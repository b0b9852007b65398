"""The real GPU libraries: absent here (CI installs neither), a tiny CPU run where
PyTorch is installed, and the whole burn-in on a real GPU (marker ``gpu``)."""

from __future__ import annotations

import os
from importlib.util import find_spec

import pytest

from hpresil.burnin.gpulib import NoGpuLibrary, TorchKernel, open_library
from hpresil.burnin.kernel import copy_gbps, measure, tflops
from hpresil.burnin.run import run_burnin
from hpresil.config.burnin import BurninConfig
from hpresil.vocab import Status
from tests.unit.burnin.fakes import on_path

HAVE_LIBRARY = find_spec("torch") is not None or find_spec("cupy") is not None


@pytest.mark.skipif(HAVE_LIBRARY, reason="torch or cupy is installed here")
def test_without_torch_or_cupy_there_is_no_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    with pytest.raises(NoGpuLibrary) as err:
        open_library()
    assert str(err.value) == "no CUDA library/GPU (torch not installed; cupy not installed)"
    assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # before any CUDA library loads


@pytest.mark.skipif(HAVE_LIBRARY, reason="torch or cupy is installed here")
def test_the_default_burn_in_here_is_unsupported_not_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    cfg = BurninConfig(nccl=False, gpu_burn=False)
    results = run_burnin(cfg, [], None, False, which=on_path())
    assert {r.status for r in results} == {Status.UNSUPPORTED}


def test_a_tiny_gemm_and_copy_with_torch_on_the_cpu() -> None:
    torch = pytest.importorskip("torch")
    kernel = TorchKernel(torch, "cpu", size=64, dtype="bf16", copy_bytes=1 << 16)
    assert kernel.dtype in ("bf16", "fp16", "fp32")
    assert (kernel.device_name, kernel.pci_bus_id) == ("cpu", None)
    gemm = measure(kernel, "gemm", duration_s=0.05, warmup=2)
    copy = measure(kernel, "copy", duration_s=0.05, warmup=2)
    kernel.close()
    assert gemm.iterations > 0 and tflops(64, gemm) > 0
    assert copy.iterations > 0 and copy_gbps(1 << 16, copy) > 0


@pytest.mark.gpu
def test_the_burn_in_on_a_real_gpu() -> None:
    try:
        library = open_library()
    except NoGpuLibrary as exc:
        pytest.skip(str(exc))
    cfg = BurninConfig(duration_s=3, membw_duration_s=1, nccl=False, gpu_burn=False)
    results = run_burnin(cfg, [], None, False, library=lambda: library)
    assert len(results) == 2 * library.device_count()
    for r in results:
        assert r.status in (Status.OK, Status.UNKNOWN, Status.FAIL), r.summary
        figure = r.evidence.get("tflops") or r.evidence.get("membw_gbps")
        assert isinstance(figure, float) and figure > 0, r.summary
        assert r.gpu is not None and r.gpu.pci_bus_id, r
