"""The two :class:`~hpresil.burnin.kernel.GpuLibrary` implementations: PyTorch and
CuPy, both imported only when :func:`open_library` is called (neither is a
dependency of hpresil).

CUDA numbers devices fastest first unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``;
:func:`open_library` sets that (when unset) before importing a library, so CUDA's
index ``i`` is NVML's GPU ``i``. Kernels also report their PCI address, and the
burn-in matches GPUs on it first.
"""

from __future__ import annotations

import importlib
import os
import time
from typing import Any

from hpresil.burnin.kernel import GpuLibrary, Kernel, Op
from hpresil.config.burnin import Dtype
from hpresil.errors import HpresilError
from hpresil.vocab.gpu import normalize_bus_id

# what to try, in order, for a requested dtype
FALLBACK: dict[Dtype, tuple[Dtype, ...]] = {
    "bf16": ("bf16", "fp16", "fp32"),
    "fp16": ("fp16", "fp32"),
    "fp32": ("fp32",),
}


class NoGpuLibrary(HpresilError):
    """Neither PyTorch nor CuPy is importable, or neither sees a CUDA GPU."""


def open_library() -> GpuLibrary:
    """PyTorch if it sees a CUDA GPU, else CuPy if it does; else NoGpuLibrary."""
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    why: list[str] = []
    for name, make in (("torch", _torch), ("cupy", _cupy)):
        try:
            library = make()
            count = library.device_count()
        except ImportError:
            why.append(f"{name} not installed")
            continue
        except Exception as exc:  # a broken install or driver: say so, try the next
            why.append(f"{name}: {exc}")
            continue
        if count > 0:
            return library
        why.append(f"{name} sees no CUDA GPU")
    raise NoGpuLibrary("no CUDA library/GPU (" + "; ".join(why) + ")")


def _torch() -> GpuLibrary:
    return TorchLibrary(importlib.import_module("torch"))


def _cupy() -> GpuLibrary:
    return CupyLibrary(importlib.import_module("cupy"))


# --- PyTorch ---
class TorchLibrary:
    name = "torch"

    def __init__(self, torch: Any) -> None:
        self._torch = torch

    def device_count(self) -> int:
        cuda = self._torch.cuda
        return int(cuda.device_count()) if cuda.is_available() else 0

    def open(self, index: int, *, size: int, dtype: Dtype, copy_bytes: int) -> Kernel:
        return TorchKernel(
            self._torch, f"cuda:{index}", size=size, dtype=dtype, copy_bytes=copy_bytes
        )


class TorchKernel:
    """One device (``cuda:N``, or ``cpu``) with its GEMM and copy buffers."""

    def __init__(self, torch: Any, device: str, *, size: int, dtype: Dtype, copy_bytes: int):
        self._torch = torch
        self._dev = torch.device(device)
        self._cuda = self._dev.type == "cuda"
        self.size, self.copy_bytes = size, copy_bytes
        self.dtype = next(d for d in FALLBACK[dtype] if d == "fp32" or self._gemm_works(d))
        kind = self._kind(self.dtype)
        self._a = torch.randn(size, size, device=self._dev, dtype=kind)
        self._b = torch.randn(size, size, device=self._dev, dtype=kind)
        self._c = torch.empty(size, size, device=self._dev, dtype=kind)
        self._src = torch.ones(copy_bytes, device=self._dev, dtype=torch.uint8)
        self._dst = torch.empty_like(self._src)
        self.device_name = torch.cuda.get_device_name(self._dev) if self._cuda else "cpu"
        self.pci_bus_id = self._bus_id() if self._cuda else None

    def run(self, op: Op, count: int) -> float:
        step = self._gemm if op == "gemm" else self._copy
        self._sync()
        start = time.perf_counter()
        for _ in range(count):
            step()
        self._sync()
        return time.perf_counter() - start

    def close(self) -> None:
        del self._a, self._b, self._c, self._src, self._dst
        if self._cuda:
            self._torch.cuda.empty_cache()

    def _gemm(self) -> None:
        self._torch.matmul(self._a, self._b, out=self._c)

    def _copy(self) -> None:
        self._dst.copy_(self._src)

    def _sync(self) -> None:
        if self._cuda:
            self._torch.cuda.synchronize(self._dev)

    def _kind(self, dtype: Dtype) -> Any:
        t = self._torch
        return {"bf16": t.bfloat16, "fp16": t.float16, "fp32": t.float32}[dtype]

    def _gemm_works(self, dtype: Dtype) -> bool:
        try:
            probe = self._torch.ones(16, 16, device=self._dev, dtype=self._kind(dtype))
            self._torch.matmul(probe, probe)
            self._sync()
        except RuntimeError:
            return False
        return True

    def _bus_id(self) -> str | None:
        props = self._torch.cuda.get_device_properties(self._dev)
        parts = [getattr(props, f, None) for f in ("pci_domain_id", "pci_bus_id", "pci_device_id")]
        if any(not isinstance(p, int) for p in parts):
            return None
        return normalize_bus_id(f"{parts[0]:x}:{parts[1]:x}:{parts[2]:x}")


# --- CuPy ---
class CupyLibrary:
    name = "cupy"

    def __init__(self, cupy: Any) -> None:
        self._cp = cupy

    def device_count(self) -> int:
        try:
            return int(self._cp.cuda.runtime.getDeviceCount())
        except self._cp.cuda.runtime.CUDARuntimeError:
            return 0

    def open(self, index: int, *, size: int, dtype: Dtype, copy_bytes: int) -> Kernel:
        return CupyKernel(self._cp, index, size=size, dtype=dtype, copy_bytes=copy_bytes)


class CupyKernel:
    """One CUDA device through CuPy. NumPy has no bfloat16, so bf16 runs as fp16."""

    def __init__(self, cupy: Any, index: int, *, size: int, dtype: Dtype, copy_bytes: int):
        cp = self._cp = cupy
        self._device = cp.cuda.Device(index)
        self.size, self.copy_bytes = size, copy_bytes
        self.dtype: Dtype = "fp32" if dtype == "fp32" else "fp16"
        kind = cp.float16 if self.dtype == "fp16" else cp.float32
        with self._device:
            self._a = cp.random.random((size, size), dtype=cp.float32).astype(kind)
            self._b = cp.random.random((size, size), dtype=cp.float32).astype(kind)
            self._c = cp.empty((size, size), dtype=kind)
            self._src = cp.ones(copy_bytes, dtype=cp.uint8)
            self._dst = cp.empty_like(self._src)
        name = cp.cuda.runtime.getDeviceProperties(index)["name"]
        self.device_name = name.decode() if isinstance(name, bytes) else str(name)
        self.pci_bus_id = normalize_bus_id(str(self._device.pci_bus_id))

    def run(self, op: Op, count: int) -> float:
        cp = self._cp
        with self._device:
            self._device.synchronize()
            start = time.perf_counter()
            for _ in range(count):
                if op == "gemm":
                    cp.matmul(self._a, self._b, out=self._c)
                else:
                    cp.copyto(self._dst, self._src)
            self._device.synchronize()
            return time.perf_counter() - start

    def close(self) -> None:
        del self._a, self._b, self._c, self._src, self._dst
        self._cp.get_default_memory_pool().free_all_blocks()
