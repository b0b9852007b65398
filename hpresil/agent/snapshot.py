"""Collect once per tick, judge many times (STYLE.md pattern 4).

A :class:`Snapshot` is everything the checks may look at, gathered once per tick by
a :class:`Collector`; checks only read it, and tests build snapshots directly.

Besides the GPUs and kernel-log events, a snapshot carries *facts* from pluggable
:class:`FactSource` collectors (InfiniBand ports, DCGM health, mounts, ...), keyed by
the facts' type: ``snapshot.fact(IbFacts)`` is the InfiniBand collector's answer, or
None when it failed this tick (``snapshot.fact_error(IbFacts)`` says why).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from hpresil.adapters.gpu.base import GpuBackend, GpuSample, normalize_bus_id
from hpresil.clock import utcnow
from hpresil.errors import GpuError
from hpresil.vocab import GpuIdentity, XidEvent

T = TypeVar("T")
log = logging.getLogger(__name__)

GPU_QUERY_TIMEOUT_S = 10.0  # a tick waits this long for the GPU backend
GPU_QUERY_TIMEOUT_WITH_EVENTS_S = 1.0  # ... or this long when XIDs wait to be reported


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

    def gpu_identity(self, pci_bus_id: str) -> GpuIdentity | None:
        """The GPU at ``pci_bus_id`` (any spelling), from this or the last good query."""
        bdf = normalize_bus_id(pci_bus_id)
        identities = [g.identity for g in self.gpus] or list(self.known_gpus)
        return next((i for i in identities if i.pci_bus_id == bdf), None)


class Collector:
    """Builds snapshots from a GPU backend; remembers the expected GPU count (the
    configured one, else the count found by the first successful query)."""

    def __init__(
        self,
        node: str,
        backend: GpuBackend,
        expected_gpus: int | None = None,
        clock: Callable[[], datetime] = utcnow,
        *,
        query_timeout_s: float = GPU_QUERY_TIMEOUT_S,
        event_timeout_s: float = GPU_QUERY_TIMEOUT_WITH_EVENTS_S,
        sources: Sequence[FactSource[Any]] = (),
    ) -> None:
        self.node = node
        self._sources = [_Guarded(s) for s in sources]
        self._timeouts = (query_timeout_s, event_timeout_s)
        self._backend = backend
        self._expected = expected_gpus
        self._clock = clock
        self._known: tuple[GpuIdentity, ...] = ()
        self._busy_since: float | None = None  # a GPU query that has not returned
        self._lock = threading.Lock()

    @property
    def expected_gpus(self) -> int | None:
        return self._expected

    def collect(self, xid_events: Sequence[XidEvent] = ()) -> Snapshot:
        timeout = self._timeouts[1] if xid_events else self._timeouts[0]
        gpus: tuple[GpuSample, ...] = ()
        error: str | None = None
        try:
            gpus = tuple(self._query(timeout))
        except GpuError as exc:
            error = str(exc)
        except Exception as exc:  # a backend bug must not end the tick
            log.warning("GPU backend failed: %r", exc)
            error = f"GPU backend failed: {exc!r}"
        if error is None:
            with self._lock:
                self._known = tuple(g.identity for g in gpus)
                if self._expected is None:
                    self._expected = len(gpus)
        return Snapshot(
            node=self.node,
            taken_at=self._clock(),
            gpus=gpus,
            gpu_error=error,
            expected_gpus=self._expected,
            xid_events=tuple(xid_events),
            known_gpus=self._known,
            **self._facts(),
        )

    def _facts(self) -> dict[str, Mapping[type, Any]]:
        facts: dict[type, object] = {}
        errors: dict[type, str] = {}
        for source in self._sources:
            try:
                facts[source.kind] = source.collect()
            except Exception as exc:  # any failure of a source is a fact error, never fatal
                errors[source.kind] = str(exc) or repr(exc)
        return {"facts": MappingProxyType(facts), "fact_errors": MappingProxyType(errors)}

    def _query(self, timeout: float) -> list[GpuSample]:
        with self._lock:
            if self._busy_since is not None:
                ago = time.monotonic() - self._busy_since
                raise GpuError(f"GPU query still running (started {ago:.0f} s ago)")
            self._busy_since = time.monotonic()

        def query() -> list[GpuSample]:
            try:
                return self._backend.devices()
            finally:
                with self._lock:
                    self._busy_since = None

        try:
            return call_with_timeout(query, timeout, "gpu-query")
        except TimeoutError:
            raise GpuError(f"GPU query did not answer within {timeout:g} s") from None


class _Guarded:
    """A fact source run under its timeout, never twice at once: while a hung call is
    still running, later ticks get an error instead of another stuck thread."""

    def __init__(self, source: FactSource[Any]) -> None:
        self.kind = source.kind
        self._source = source
        self._busy_since: float | None = None
        self._lock = threading.Lock()

    def collect(self) -> object:
        with self._lock:
            if self._busy_since is not None:
                ago = time.monotonic() - self._busy_since
                raise TimeoutError(f"{self._source.name}: still running ({ago:.0f} s)")
            self._busy_since = time.monotonic()

        def run() -> object:
            try:
                return self._source.collect()
            finally:
                with self._lock:
                    self._busy_since = None

        return call_with_timeout(run, self._source.timeout_s, self._source.name)


def call_with_timeout(fn: Callable[[], T], timeout: float, name: str) -> T:
    """``fn()`` on a daemon thread; TimeoutError if it has not returned in ``timeout``.

    The thread cannot be killed: a call that hangs keeps its thread (a daemon, so it
    never blocks exit). Callers guard against starting a second one.
    """
    box: list[T] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=target, name=name, daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError(f"{name} did not return within {timeout:g} s")
    if failure:
        raise failure[0]
    return box[0]
