"""Snapshots built directly (STYLE.md pattern 4) on the H100 layout the NVML double
answers (tests/unit/gpu/samples.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from hpresil.vocab import XidEvent
from hpresil.vocab.gpu import EccCounts, EccInfo, GpuSample
from hpresil.vocab.snapshot import Snapshot
from tests.unit.gpu.samples import h100s

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def gpus(
    changes: Mapping[int, Mapping[str, object]] | None = None, node: str = "node1"
) -> tuple[GpuSample, ...]:
    """Eight healthy GPUs; ``gpus({3: {"lost": True}})`` alters GPU 3."""
    out = []
    for ident in (g.identity for g in h100s(node)):
        fields: dict[str, object] = {
            "ecc": EccInfo(volatile=EccCounts(corrected=0, uncorrected=0)),
            "temperature_c": 40,
            **(changes or {}).get(ident.index, {}),
        }
        out.append(GpuSample(identity=ident, **fields))  # type: ignore[arg-type]
    return tuple(out)


def snapshot(
    *,
    gpu_samples: tuple[GpuSample, ...] | None = None,
    events: tuple[XidEvent, ...] = (),
    expected: int | None = 8,
    gpu_error: str | None = None,
) -> Snapshot:
    samples = gpus() if gpu_samples is None else gpu_samples
    return Snapshot(
        node="node1",
        taken_at=AT,
        gpus=samples,
        gpu_error=gpu_error,
        expected_gpus=expected,
        xid_events=events,
        known_gpus=tuple(g.identity for g in gpus()),
    )


def xid(number: int, bdf: str = "0000:5d:00", message: str = "") -> XidEvent:
    return XidEvent(
        xid=number,
        pci_bus_id=bdf,
        message=message,
        raw=f"NVRM: Xid (PCI:{bdf}): {number}, {message}",
        seen_at=AT,
    )
