"""InfiniBand facts: every port's state, counter deltas and recent link-down events.

The source is stateful. It keeps the previous reading of each port to publish the
counter increases since then (a counter that went backwards was reset: no delta that
time), and a time-stamped history of link-down events, so that the ``ib`` check can
count flaps in a window (gpud: down and back 3 times in 12 h; Azure: 5 lost-carrier
events in 24 h). A link-down event is an increase of ``link_downed`` or, where that
counter says less (it saturates at 255), a port seen ACTIVE that is no longer.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from hpresil.adapters.ib import IbPort, IbSysfs
from hpresil.clock import Clock, utcnow
from hpresil.config.host import DEFAULT_ROOT, IbConfig

MAX_EVENTS_PER_PORT = 1000


@dataclass(frozen=True)
class IbPortFacts:
    port: IbPort
    deltas: Mapping[str, int]  # increase since the previous collection; {} the first time
    downs: tuple[datetime, ...] = ()  # link-down events within the flap window, oldest first


@dataclass(frozen=True)
class IbFacts:
    observed_at: datetime
    ports: tuple[IbPortFacts, ...] = ()
    missing: tuple[str, ...] = ()  # ports seen earlier by this agent that are gone now
    interval_s: float | None = None  # since the previous collection
    root: str = str(DEFAULT_ROOT)


class IbSource:
    """Reads the ports under ``config.sysfs_root`` once per tick."""

    name = "ib"
    kind = IbFacts
    timeout_s = 10.0  # each counter read is a query to the HCA

    def __init__(
        self, config: IbConfig | None = None, *, clock: Clock = utcnow, sysfs: IbSysfs | None = None
    ) -> None:
        cfg = config or IbConfig()
        self._sysfs = sysfs or IbSysfs(cfg.sysfs_root)
        self._ignore = re.compile(cfg.ignore_ports) if cfg.ignore_ports else None
        self._window = timedelta(seconds=cfg.flap_window_s)
        self._clock = clock
        self._previous: dict[str, IbPort] = {}
        self._previous_at: datetime | None = None
        self._downs: dict[str, deque[datetime]] = {}
        self._seen: set[str] = set()

    def collect(self) -> IbFacts:
        now = self._clock()
        ports = [p for p in self._sysfs.ports() if not self._ignored(p)]
        facts = tuple(self._track(p, now) for p in ports)
        names = {p.name for p in ports}
        missing = tuple(sorted(self._seen - names))
        interval = (now - self._previous_at).total_seconds() if self._previous_at else None
        self._seen |= names
        self._previous = {p.name: p for p in ports}
        self._previous_at = now
        return IbFacts(now, facts, missing, interval, str(self._sysfs.root))

    def _ignored(self, port: IbPort) -> bool:
        return self._ignore is not None and self._ignore.search(port.name) is not None

    def _track(self, port: IbPort, now: datetime) -> IbPortFacts:
        before = self._previous.get(port.name)
        deltas = counter_deltas(before, port)
        went_down = before is not None and before.active and not port.active and not port.error
        events = max(deltas.get("link_downed", 0), int(went_down))
        history = self._downs.setdefault(port.name, deque(maxlen=MAX_EVENTS_PER_PORT))
        history.extend([now] * min(events, MAX_EVENTS_PER_PORT))
        while history and history[0] <= now - self._window:
            history.popleft()
        return IbPortFacts(port, deltas, tuple(history))


def counter_deltas(before: IbPort | None, now: IbPort) -> dict[str, int]:
    """Increase of each counter read both times; a counter that went down was reset."""
    if before is None:
        return {}
    old = before.counters
    return {k: v - old[k] for k, v in now.counters.items() if k in old and v >= old[k]}
