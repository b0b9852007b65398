"""Fact sources for the agent: DCGM health watches each tick (paced), diagnostics on
demand.

* :class:`DcgmHealthSource` answers a :class:`DcgmHealth` fact. It queries ``dcgmi
  health -c -j`` at most every ``interval_s`` and answers the cached fact in
  between; when no watch is set it sets them once (``dcgmi health -s a``).
* :class:`DcgmDiagSource` answers a :class:`DcgmDiag` fact by running ``dcgmi diag``
  when ``idle()`` says the node is idle, and a "busy" fact otherwise. A diagnostic
  takes minutes, so the deep tier runs this source, never the per-tick collector.

Both raise on a failure (a timeout, unreadable output); the collector turns that
into a fact error and the checks report UNKNOWN.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hpresil.dcgm.dcgmi import DcgmUnavailable, HealthWatchesOff
from hpresil.dcgm.model import DiagReport, HealthReport

HEALTH_MARGIN_S = 5.0  # the source's own limit exceeds dcgmi's by this much
DIAG_MARGIN_S = 60.0


@dataclass(frozen=True)
class DcgmHealth:
    """DCGM's health watches this tick: a report, or why DCGM cannot answer."""

    report: HealthReport | None = None
    unavailable: str | None = None


@dataclass(frozen=True)
class DcgmDiag:
    """One diagnostic run: its report, why DCGM cannot run it, or that the node was busy."""

    level: int
    report: DiagReport | None = None
    unavailable: str | None = None
    busy: bool = False


class HealthAdapter(Protocol):
    health_timeout_s: float

    def health(self) -> HealthReport | DcgmUnavailable: ...

    def enable_health_watches(self) -> DcgmUnavailable | None: ...


class DiagAdapter(Protocol):
    def diag_timeout(self, level: int, iterations: int = 1) -> float: ...

    def diag(self, level: int = 2, iterations: int = 1) -> DiagReport | DcgmUnavailable: ...


class DcgmHealthSource:
    name = "dcgm-health"
    kind = DcgmHealth

    def __init__(
        self,
        adapter: HealthAdapter,
        *,
        interval_s: float = 60.0,
        enable_watches: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = adapter.health_timeout_s + HEALTH_MARGIN_S
        self._adapter = adapter
        self._interval = interval_s
        self._enable = enable_watches
        self._clock = clock
        self._cached: tuple[float, DcgmHealth] | None = None
        self._watches_set = False

    def collect(self) -> DcgmHealth:
        now = self._clock()
        if self._cached is not None and now - self._cached[0] < self._interval:
            return self._cached[1]
        try:
            answer = self._adapter.health()
        except HealthWatchesOff:
            if not self._enable or self._watches_set:
                raise
            self._watches_set = True
            self._adapter.enable_health_watches()
            raise HealthWatchesOff(
                "DCGM health watches were off; hpresil set them (`dcgmi health -s a`), "
                "results follow within a minute"
            ) from None
        if isinstance(answer, DcgmUnavailable):
            fact = DcgmHealth(unavailable=answer.reason)
        else:
            fact = DcgmHealth(report=answer)
        self._cached = (now, fact)
        return fact


class DcgmDiagSource:
    name = "dcgm-diag"
    kind = DcgmDiag

    def __init__(
        self,
        adapter: DiagAdapter,
        idle: Callable[[], bool],
        level: int = 2,
        *,
        iterations: int = 1,
    ) -> None:
        self.timeout_s = adapter.diag_timeout(level, iterations) + DIAG_MARGIN_S
        self.level = level
        self._adapter = adapter
        self._idle = idle
        self._iterations = iterations

    def collect(self) -> DcgmDiag:
        if not self._idle():
            return DcgmDiag(self.level, busy=True)
        answer = self._adapter.diag(self.level, self._iterations)
        if isinstance(answer, DcgmUnavailable):
            return DcgmDiag(self.level, unavailable=answer.reason)
        return DcgmDiag(self.level, report=answer)
