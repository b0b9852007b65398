"""The :class:`Collector`: builds one :class:`~hpresil.vocab.snapshot.Snapshot` per
tick from the GPU backend and the node's fact sources (STYLE.md pattern 4).

Each source runs under its own timeout and never twice at once; a source that fails
or hangs becomes a fact error in the snapshot, never a failed tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from hpresil.adapters.gpu.base import GpuBackend
from hpresil.clock import utcnow
from hpresil.errors import GpuError
from hpresil.vocab import GpuIdentity, XidEvent
from hpresil.vocab.gpu import GpuSample
from hpresil.vocab.snapshot import FactSource, Snapshot
from hpresil.vocab.timeout import call_with_timeout

log = logging.getLogger(__name__)

GPU_QUERY_TIMEOUT_S = 10.0  # a tick waits this long for the GPU backend
GPU_QUERY_TIMEOUT_WITH_EVENTS_S = 1.0  # ... or this long when XIDs wait to be reported


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
