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
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hpresil.clock import Clock, utcnow
from hpresil.host.procs import DISK_SLEEP, ZOMBIE, ProcessLister, ProcInfo, list_processes

TOP_PARENTS = 5


class ProcessesConfig(BaseModel):
    """``[checks.processes]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    d_state_warn_count: int = Field(default=5, ge=1)  # this many seen in D on two ticks
    d_state_warn_s: float = Field(default=120.0, gt=0)  # one process in D this long: warn
    d_state_fail_s: float = Field(default=600.0, gt=0)  # ... this long: fail, drain
    zombie_warn_count: int = Field(default=200, ge=1)
    ignore_names: tuple[str, ...] = ()  # process names never judged

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.d_state_fail_s < self.d_state_warn_s:
            fail, warn = self.d_state_fail_s, self.d_state_warn_s
            raise ValueError(f"d_state_fail_s ({fail:g}) is below d_state_warn_s ({warn:g})")
        return self


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
