"""Helpers the DCGM checks share: naming GPUs."""

from __future__ import annotations

from collections.abc import Sequence

from hpresil.vocab import GpuIdentity
from hpresil.vocab.snapshot import Snapshot


def known_gpus(snapshot: Snapshot) -> list[GpuIdentity]:
    """The GPUs of this tick, else those of the last good query."""
    return [g.identity for g in snapshot.gpus] or list(snapshot.known_gpus)


def identity(index: int, known: Sequence[GpuIdentity], serial: str | None = None) -> GpuIdentity:
    """The GPU with DCGM id ``index`` (the NVML index on a default DCGM install)."""
    found = next((g for g in known if g.index == index), None)
    return found if found is not None else GpuIdentity(index=index, serial=serial or None)
