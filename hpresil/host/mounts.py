"""Mount facts: each required mount point is in the mount table and answers ``stat``.

A hung NFS or Lustre mount blocks ``stat`` in the kernel, uninterruptibly, and no
thread can be killed. So each stat runs on a daemon thread with a deadline; one that
has not returned stays on record, and later ticks report the mount as still hanging
instead of starting a second stat on it (which would hang too, one more thread each
tick).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hpresil.config.host import MountsConfig

MOUNT_TABLE = Path("/proc/self/mounts")


@dataclass(frozen=True)
class MountState:
    path: str
    mounted: bool  # a mount point of its own in the mount table
    fstype: str | None = None
    device: str | None = None
    stat_s: float | None = None  # how long stat took, when it returned
    hung_s: float | None = None  # a stat started this long ago has not returned
    error: str | None = None  # stat failed (ESTALE, EIO, ENOENT, ...)


@dataclass(frozen=True)
class MountFacts:
    mounts: tuple[MountState, ...] = ()


@dataclass(frozen=True)
class MountEntry:
    device: str
    path: str
    fstype: str


def _unescape(field: str) -> str:
    """The kernel writes space, tab, newline and backslash in octal (``\\040``)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def parse_mount_table(text: str) -> dict[str, MountEntry]:
    """Mount point -> its (last, i.e. visible) entry, from ``/proc/self/mounts`` text."""
    table: dict[str, MountEntry] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            entry = MountEntry(_unescape(fields[0]), _unescape(fields[1]), fields[2])
            table[entry.path] = entry
    return table


class _Stat:
    """One stat of one path on its own daemon thread."""

    def __init__(self, path: str, stat: Callable[[str], object]) -> None:
        self.started = time.monotonic()
        self.done = threading.Event()
        self.elapsed: float | None = None
        self.error: str | None = None
        self._stat = stat
        self._path = path
        threading.Thread(target=self._run, name=f"stat {path}", daemon=True).start()

    def _run(self) -> None:
        try:
            self._stat(self._path)
        except OSError as exc:
            self.error = exc.strerror or str(exc)
        except Exception as exc:
            self.error = repr(exc)
        finally:
            self.elapsed = time.monotonic() - self.started
            self.done.set()


class MountSource:
    name = "mounts"
    kind = MountFacts

    def __init__(
        self,
        config: MountsConfig | None = None,
        *,
        table: Path = MOUNT_TABLE,
        stat: Callable[[str], object] = os.stat,
    ) -> None:
        cfg = config or MountsConfig()
        self._paths: Sequence[str] = cfg.required
        self._deadline_s = cfg.stat_timeout_s
        self.timeout_s = cfg.stat_timeout_s + 5.0  # the stats run in parallel
        self._table = table
        self._stat = stat
        self._pending: dict[str, _Stat] = {}  # stats that missed their deadline

    def collect(self) -> MountFacts:
        table = parse_mount_table(self._table.read_text()) if self._paths else {}
        hanging = {p: s for p, s in self._pending.items() if not s.done.is_set()}
        fresh = {p: _Stat(p, self._stat) for p in self._paths if p not in hanging}
        deadline = time.monotonic() + self._deadline_s
        for stat in fresh.values():  # a stat known to hang is not waited for again
            stat.done.wait(max(0.0, deadline - time.monotonic()))
        stats = {**hanging, **fresh}
        self._pending = {}
        return MountFacts(tuple(self._state(p, stats[p], table) for p in self._paths))

    def _state(self, path: str, stat: _Stat, table: dict[str, MountEntry]) -> MountState:
        entry = table.get(path)
        hung = None if stat.done.is_set() else time.monotonic() - stat.started
        if hung is not None:
            self._pending[path] = stat
        return MountState(
            path=path,
            mounted=entry is not None,
            fstype=entry.fstype if entry else None,
            device=entry.device if entry else None,
            stat_s=stat.elapsed if hung is None else None,
            hung_s=hung,
            error=stat.error if hung is None else None,
        )
