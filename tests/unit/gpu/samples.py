"""Real GpuSamples from tests/fixtures/gpu, the simulated H100, and snapshots of them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from hpresil.adapters.gpu.base import GpuSample
from hpresil.adapters.gpu.history import GpuHistory
from hpresil.adapters.gpu.simulated import _sample, initial_state
from hpresil.adapters.gpu.smi_xml import parse_smi_xml
from hpresil.agent.snapshot import Snapshot

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gpu"
A100 = "a100-sxm4-80gb-mig-535.54.03.xml"
T4 = "tesla-t4-515.105.01.xml"
BLACKWELL = "rtx-pro-6000-blackwell-maxq-590.44.01-trimmed.xml"
REAL = (A100, T4, BLACKWELL)
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def real(name: str) -> tuple[GpuSample, ...]:
    return tuple(parse_smi_xml((FIXTURES / name).read_text()))


def h100s(node: str = "node1") -> tuple[GpuSample, ...]:
    """The simulated backend's eight healthy H100 SXM5."""
    return tuple(_sample(g) for g in initial_state(node).gpus)


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
