"""The process table through psutil: the one place host checks list processes.

Sources take a ``list_processes`` callable so tests pass a fixed table.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

DISK_SLEEP = psutil.STATUS_DISK_SLEEP  # "disk-sleep": state D, uninterruptible
ZOMBIE = psutil.STATUS_ZOMBIE  # "zombie": state Z


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    name: str
    status: str  # psutil's status strings
    ppid: int = 0
    create_time: float = 0.0  # tells a reused pid from the process that had it


ProcessLister = Callable[[], list[ProcInfo]]


def list_processes() -> list[ProcInfo]:
    """Every process visible to us; those that vanish while listed are left out."""
    found = []
    for proc in psutil.process_iter(["pid", "name", "status", "ppid", "create_time"]):
        info = proc.info
        if info.get("status") is None:  # gone, or not ours to look at
            continue
        found.append(
            ProcInfo(
                pid=int(info["pid"]),
                name=str(info.get("name") or ""),
                status=str(info["status"]),
                ppid=int(info.get("ppid") or 0),
                create_time=float(info.get("create_time") or 0.0),
            )
        )
    return found


class SharedProcessTable:
    """One process listing shared by the sources of a tick: the table is listed at
    most once per ``ttl_s`` (listing every process costs milliseconds of CPU)."""

    def __init__(
        self,
        lister: ProcessLister = list_processes,
        ttl_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lister = lister
        self._ttl = ttl_s
        self._clock = clock
        self._cached: tuple[float, list[ProcInfo]] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> list[ProcInfo]:
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._cached[0] >= self._ttl:
                self._cached = (now, self._lister())
            return list(self._cached[1])
