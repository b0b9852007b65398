"""Snapshots built directly (STYLE.md pattern 4) from the simulated H100 layout."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from hpresil.adapters.gpu.base import GpuSample
from hpresil.adapters.gpu.simulated import initial_state
from hpresil.agent.snapshot import Snapshot
from hpresil.vocab import GpuIdentity, XidEvent

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def gpus(
    changes: Mapping[int, Mapping[str, object]] | None = None, node: str = "node1"
) -> tuple[GpuSample, ...]:
    """Eight healthy GPUs; ``gpus({3: {"lost": True}})`` alters GPU 3."""
    out = []
    for g in initial_state(node).gpus:
        ident = GpuIdentity(
            index=g.index, uuid=g.uuid, serial=g.serial, pci_bus_id=g.pci_bus_id, name=g.name
        )
        fields: dict[str, object] = {
            "ecc_uncorrected_volatile": 0,
            "ecc_corrected_volatile": 0,
            "temperature_c": 40,
            **(changes or {}).get(g.index, {}),
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
