"""Process facts: processes stuck in uninterruptible sleep (D) and zombies.

A process in D waits inside the kernel and cannot be killed; briefly that is normal
I/O, for minutes it is a hung device, driver or file system (the kernel's own
hung-task warning fires after 120 s). The source remembers since when each process
(pid and start time, so a reused pid starts afresh) has been seen in D on
consecutive collections.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from hpresil.clock import Clock, utcnow
from hpresil.config.host import ProcessesConfig
from hpresil.host.procs import DISK_SLEEP, ZOMBIE, ProcessLister, ProcInfo, list_processes

TOP_PARENTS = 5


@dataclass(frozen=True)
class StuckProcess:
    pid: int
    name: str
    in_d_s: float  # since it was first seen in D (0 the first time)
    persisting: bool  # also in D at the previous collection


@dataclass(frozen=True)
class ProcessFacts:
    total: int = 0
    d_state: tuple[StuckProcess, ...] = ()
    zombies: int = 0
    zombie_parents: tuple[tuple[int, int], ...] = ()  # (parent pid, zombies), most first


class ProcessesSource:
    name = "processes"
    kind = ProcessFacts
    timeout_s = 10.0

    def __init__(
        self,
        config: ProcessesConfig | None = None,
        *,
        clock: Clock = utcnow,
        list_processes: ProcessLister = list_processes,
    ) -> None:
        self._ignore = frozenset((config or ProcessesConfig()).ignore_names)
        self._clock = clock
        self._list = list_processes
        self._since: dict[tuple[int, float], datetime] = {}  # first seen in D

    def collect(self) -> ProcessFacts:
        now = self._clock()
        table = [p for p in self._list() if p.name not in self._ignore]
        in_d = [p for p in table if p.status == DISK_SLEEP]
        previous = self._since
        self._since = {_key(p): previous.get(_key(p), now) for p in in_d}
        stuck = tuple(self._stuck(p, now, _key(p) in previous) for p in in_d)
        zombies = Counter(p.ppid for p in table if p.status == ZOMBIE)
        return ProcessFacts(
            total=len(table),
            d_state=stuck,
            zombies=sum(zombies.values()),
            zombie_parents=tuple(zombies.most_common(TOP_PARENTS)),
        )

    def _stuck(self, proc: ProcInfo, now: datetime, persisting: bool) -> StuckProcess:
        since = self._since[_key(proc)]
        return StuckProcess(proc.pid, proc.name, (now - since).total_seconds(), persisting)


def _key(proc: ProcInfo) -> tuple[int, float]:
    return (proc.pid, proc.create_time)
