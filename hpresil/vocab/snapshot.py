"""Collect once per tick, judge many times (STYLE.md pattern 4).

A :class:`Snapshot` is everything the checks may look at, gathered once per tick by
the agent's collector (:class:`hpresil.host.collector.Collector`); checks only read
it, and tests build snapshots directly.

Besides the GPUs and kernel-log events, a snapshot carries *facts* from pluggable
:class:`FactSource` collectors (InfiniBand ports, DCGM health, mounts, ...), keyed by
the facts' type: ``snapshot.fact(IbFacts)`` is the InfiniBand collector's answer, or
None when it failed this tick (``snapshot.fact_error(IbFacts)`` says why).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Protocol, TypeVar, runtime_checkable

from hpresil.vocab import CheckResult, GpuIdentity, XidEvent
from hpresil.vocab.gpu import GpuSample, normalize_bus_id

T = TypeVar("T")


class FactSource(Protocol[T]):
    """Collects one kind of fact about the node, once per tick (not pure: it reads
    sysfs, runs a tool, ...). ``collect`` raises on failure; the collector turns that
    into a fact error that checks report as UNKNOWN."""

    name: str
    kind: type[T]
    timeout_s: float

    def collect(self) -> T: ...


@dataclass(frozen=True)
class Snapshot:
    node: str
    taken_at: datetime
    gpus: tuple[GpuSample, ...] = ()
    gpu_error: str | None = None  # the GPU backend could not answer this tick
    expected_gpus: int | None = None
    xid_events: tuple[XidEvent, ...] = ()  # new since the last tick
    known_gpus: tuple[GpuIdentity, ...] = ()  # identities from the last good GPU query
    facts: Mapping[type, object] = field(default_factory=lambda: MappingProxyType({}))
    fact_errors: Mapping[type, str] = field(default_factory=lambda: MappingProxyType({}))

    def fact(self, kind: type[T]) -> T | None:
        """The facts of type ``kind`` collected this tick, or None."""
        found = self.facts.get(kind)
        return found if isinstance(found, kind) else None

    def fact_error(self, kind: type[object]) -> str | None:
        """Why the facts of type ``kind`` are missing this tick, if a source failed."""
        return self.fact_errors.get(kind)

    @property
    def identities(self) -> tuple[GpuIdentity, ...]:
        """The GPUs of this tick, else those of the last good query."""
        return tuple(g.identity for g in self.gpus) or self.known_gpus

    def gpu_identity(self, pci_bus_id: str) -> GpuIdentity | None:
        """The GPU at ``pci_bus_id`` (any spelling), from this or the last good query."""
        bdf = normalize_bus_id(pci_bus_id)
        return next((i for i in self.identities if i.pci_bus_id == bdf), None)


@runtime_checkable
class Check(Protocol):
    """A health check: judges a snapshot, never collects (see :mod:`hpresil.checks.base`
    for the registry and the runner)."""

    name: str
    tags: frozenset[str]
    interval_s: float  # run at most this often (0: every tick)
    timeout_s: float  # longer than this: an UNKNOWN result instead

    def supported(self, snapshot: Snapshot) -> bool: ...

    def evaluate(self, snapshot: Snapshot) -> list[CheckResult]: ...
