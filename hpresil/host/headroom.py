"""Headroom facts: free space and inodes on configured paths, and available memory.

Free space is what an unprivileged job can use (``f_bavail``, not counting the blocks
reserved for root). A configured path that does not exist (``/var/lib/hpresil`` before
the first run) is measured at its nearest existing parent: the file system where it
would be created.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from hpresil.config.host import HeadroomConfig

GIB = 1 << 30


@dataclass(frozen=True)
class DiskSpace:
    path: str
    measured_at: str  # path itself, or its nearest existing parent
    total_bytes: int = 0
    free_bytes: int = 0  # available to unprivileged users
    inodes: int = 0  # 0: the file system does not count inodes (btrfs, many NFS servers)
    free_inodes: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Memory:
    total_bytes: int
    available_bytes: int


@dataclass(frozen=True)
class HeadroomFacts:
    disks: tuple[DiskSpace, ...] = ()
    memory: Memory | None = None
    memory_error: str | None = None


def _memory() -> Memory:
    vm = psutil.virtual_memory()
    return Memory(total_bytes=int(vm.total), available_bytes=int(vm.available))


def nearest_existing(path: str) -> str:
    here = Path(path)
    while not here.exists() and here != here.parent:
        here = here.parent
    return str(here)


class HeadroomSource:
    name = "headroom"
    kind = HeadroomFacts
    timeout_s = 5.0

    def __init__(
        self,
        config: HeadroomConfig | None = None,
        *,
        statvfs: Callable[[str], Any] = os.statvfs,
        memory: Callable[[], Memory] = _memory,
    ) -> None:
        self._paths = (config or HeadroomConfig()).paths
        self._statvfs = statvfs
        self._memory = memory

    def collect(self) -> HeadroomFacts:
        disks = tuple(self._disk(p) for p in self._paths)
        try:
            return HeadroomFacts(disks, memory=self._memory())
        except Exception as exc:  # memory unreadable: keep the disks
            return HeadroomFacts(disks, memory_error=str(exc) or repr(exc))

    def _disk(self, path: str) -> DiskSpace:
        where = nearest_existing(path)
        try:
            st = self._statvfs(where)
        except OSError as exc:
            return DiskSpace(path, where, error=exc.strerror or str(exc))
        return DiskSpace(
            path=path,
            measured_at=where,
            total_bytes=st.f_blocks * st.f_frsize,
            free_bytes=st.f_bavail * st.f_frsize,
            inodes=st.f_files,
            free_inodes=st.f_favail,
        )
