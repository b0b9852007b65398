"""Real GpuSamples from tests/fixtures/gpu, H100s read through pynvml from the NVML
double, and snapshots of them."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from hpresil.adapters.gpu.history import GpuHistory
from hpresil.adapters.gpu.smi_xml import parse_smi_xml
from hpresil.vocab.gpu import GpuSample
from hpresil.vocab.snapshot import Snapshot
from tests.nvmldouble import reading

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gpu"
A100 = "a100-sxm4-80gb-mig-535.54.03.xml"
T4 = "tesla-t4-515.105.01.xml"
BLACKWELL = "rtx-pro-6000-blackwell-maxq-590.44.01-trimmed.xml"
A10G = "a10g-515.105.01.xml"
L4 = "l4-x2-555.42.06.xml"
H100 = "h100-80gb-hbm3-580.105.08-trimmed.xml"
REAL = (A100, T4, BLACKWELL, A10G, L4, H100)
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def real(name: str) -> tuple[GpuSample, ...]:
    return tuple(parse_smi_xml((FIXTURES / name).read_text()))


@functools.cache
def h100s(node: str = "node1") -> tuple[GpuSample, ...]:
    """Eight healthy H100 SXM as the NVML backend reads them, through pynvml, from the
    NVML double's ``h100-sxm`` preset (identities derived from ``node``)."""
    from hpresil.adapters.gpu.nvml import NvmlBackend

    with tempfile.TemporaryDirectory() as tmp, reading(Path(tmp) / "gpus.state", node):
        backend = NvmlBackend()
        try:
            return tuple(backend.devices())
        finally:
            backend.close()


def snap(
    gpus: Sequence[GpuSample],
    history: GpuHistory | None = None,
    history_error: str | None = None,
) -> Snapshot:
    """A snapshot of ``gpus``; ``history`` becomes its GpuHistory fact."""
    facts = {} if history is None else {GpuHistory: history}
    errors = {} if history_error is None else {GpuHistory: history_error}
    return Snapshot(
        node="node1",
        taken_at=AT,
        gpus=tuple(gpus),
        expected_gpus=len(gpus),
        facts=MappingProxyType(facts),
        fact_errors=MappingProxyType(errors),
    )


def ticks(*gpus_per_tick: Sequence[GpuSample], every_s: float = 5.0) -> GpuHistory:
    """A history with one tick every ``every_s`` seconds."""
    return GpuHistory.build((i * every_s, g) for i, g in enumerate(gpus_per_tick))


def steady(gpus: Sequence[GpuSample], n: int = 3, every_s: float = 5.0) -> GpuHistory:
    """``n`` identical ticks: counters that do not grow."""
    return ticks(*([gpus] * n), every_s=every_s)
