"""Fakes for the burn-in's host-facing parameters: GPU kernels whose timings the test
chooses, a library of them, a subprocess runner that answers recorded output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hpresil.adapters.proc import Completed
from hpresil.burnin.kernel import Op
from hpresil.config.burnin import Dtype
from hpresil.errors import CommandError
from hpresil.vocab import GpuIdentity

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "burnin"
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
H100 = "NVIDIA H100 80GB HBM3"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def clock() -> datetime:
    return T0


class FakeKernel:
    """A GPU reaching ``tflops`` and ``gbps`` exactly, whatever the sizes asked for.
    The first ``slow`` iterations of each op take ``slow_factor`` times longer."""

    def __init__(
        self,
        tflops: float,
        gbps: float,
        *,
        name: str = H100,
        bus: str | None = None,
        dtype: Dtype | None = None,
        slow: int = 0,
        slow_factor: float = 1.0,
        fail: Op | None = None,
    ) -> None:
        self.tflops, self.gbps = tflops, gbps
        self.device_name, self.pci_bus_id = name, bus
        self.forced_dtype = dtype
        self.dtype: Dtype = "bf16"
        self.size, self.copy_bytes = 8192, 1 << 30
        self.slow, self.slow_factor, self.fail = slow, slow_factor, fail
        self.done: dict[str, int] = {"gemm": 0, "copy": 0}
        self.calls: list[tuple[Op, int]] = []
        self.closed = False

    def setup(self, size: int, dtype: Dtype, copy_bytes: int) -> FakeKernel:
        self.size, self.copy_bytes = size, copy_bytes
        self.dtype = self.forced_dtype or dtype
        return self

    def run(self, op: Op, count: int) -> float:
        if op == self.fail:
            raise RuntimeError(f"CUDA error: an illegal memory access ({op})")
        self.calls.append((op, count))
        each = (
            2.0 * self.size**3 / (self.tflops * 1e12)
            if op == "gemm"
            else 2.0 * self.copy_bytes / (self.gbps * 1e9)
        )
        slow = max(0, min(count, self.slow - self.done[op]))
        self.done[op] += count
        return each * (count - slow) + each * self.slow_factor * slow

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeLibrary:
    kernels: Sequence[FakeKernel]
    name: str = "fake"
    refuse: set[int] = field(default_factory=set)  # indices whose open() fails

    def device_count(self) -> int:
        return len(self.kernels)

    def open(self, index: int, *, size: int, dtype: Dtype, copy_bytes: int) -> FakeKernel:
        if index in self.refuse:
            raise RuntimeError("CUDA out of memory")
        return self.kernels[index].setup(size, dtype, copy_bytes)

    def __call__(self) -> FakeLibrary:  # the library loader run_burnin calls
        return self


def gpus(n: int, name: str = H100) -> list[GpuIdentity]:
    return [
        GpuIdentity(
            index=i,
            uuid=f"GPU-0000000{i}-aaaa-bbbb-cccc-dddddddddddd",
            serial=f"165{i:07d}",
            pci_bus_id=f"0000:{0x17 + i:02x}:00",
            name=name,
        )
        for i in range(n)
    ]


def kernels(n: int, tflops: float = 790.0, gbps: float = 2950.0, **kw: Any) -> list[FakeKernel]:
    return [FakeKernel(tflops, gbps, bus=f"0000:{0x17 + i:02x}:00", **kw) for i in range(n)]


class Runner:
    """Answers every command with one recorded output; remembers what it was asked."""

    def __init__(
        self, stdout: str = "", returncode: int = 0, raises: CommandError | None = None
    ) -> None:
        self.stdout, self.returncode, self.raises = stdout, returncode, raises
        self.calls: list[tuple[list[str], dict[str, Any]]] = []

    def __call__(self, argv: Sequence[str], **kw: Any) -> Completed:
        self.calls.append((list(argv), kw))
        if self.raises is not None:
            raise self.raises
        return Completed(tuple(argv), self.returncode, self.stdout, "")


def on_path(*names: str) -> Any:
    """A ``which`` that finds only ``names``, in /opt/bin."""
    return lambda name: f"/opt/bin/{name}" if name in names else None
