"""Helpers the DCGM checks share: naming GPUs and picking the worst of several verdicts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hpresil.agent.snapshot import Snapshot
from hpresil.vocab import Action, GpuIdentity, Status

# FAIL outranks UNKNOWN (a known fault beats a doubt), which outranks WARN.
_STATUS_RANK = {
    Status.OK: 0,
    Status.UNSUPPORTED: 0,
    Status.WARN: 1,
    Status.UNKNOWN: 2,
    Status.FAIL: 3,
}


def known_gpus(snapshot: Snapshot) -> list[GpuIdentity]:
    """The GPUs of this tick, else those of the last good query."""
    return [g.identity for g in snapshot.gpus] or list(snapshot.known_gpus)


def identity(index: int, known: Sequence[GpuIdentity], serial: str | None = None) -> GpuIdentity:
    """The GPU with DCGM id ``index`` (the NVML index on a default DCGM install)."""
    found = next((g for g in known if g.index == index), None)
    return found if found is not None else GpuIdentity(index=index, serial=serial or None)


def worst_status(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=_STATUS_RANK.__getitem__, default=Status.OK)


def worst_action(actions: Iterable[Action]) -> Action:
    return max(actions, key=lambda a: a.rank, default=Action.NONE)
