"""Where the agent stopped reading the kernel log, kept on disk across restarts.

An XID printed while the agent is down (upgrade, crash, OOM kill, a node so sick the
agent stalls) must still be judged when it starts again, and a line already reported
must not be judged twice (the controller de-duplicates reports by ``report_id``
only: the same XID in a new report would be a new fault, a recurrence that climbs
the escalation ladder). So each source names a position after every line
(:class:`Line`) and the agent keeps one, the cursor:

* ``file``: device, inode, the digest of its first bytes (a deleted file's inode is
  reused) and byte offset of the followed file;
* ``kmsg``: the boot id and the sequence number of the last record (sequence numbers
  start again at every boot);
* ``journal``: journald's ``__CURSOR`` of the last entry.

**When the cursor moves** (:class:`CursorKeeper`). The durable point of a line is the
spool: once the report carrying its event is written there, delivery is retried until
the controller acknowledges it. So the saved cursor never passes a line whose event is
not spooled yet: it is the position of the last line read, held back to just before
the oldest line whose event still waits for its tick. Lines that gave no event may be
read twice after a crash (they are saved at most once a tick), which judges nothing
twice: they give no event either time.

**Where a source starts** (:func:`~hpresil.kernlog.sources.follow_forever`): after the
saved cursor; with none (first start ever, a lost or unreadable cursor file, another
source configured) at the log's end as before, and the end becomes the cursor at once,
so the next restart misses nothing. A cursor older than ``kernel_log.resume_max_s`` is
not resumed from either: an agent that was off for days should not drain nodes for
XIDs of unknown age (the cursor is rewritten every ``REFRESH_S`` while the agent runs,
so its age is the time the agent was down).

Bounded: one small file, written atomically at most once a tick and at stop.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from hpresil.fsutil import atomic_write

log = logging.getLogger(__name__)

REFRESH_S = 300.0  # an unchanged cursor is rewritten this often, so its age means "down"


class _Cursor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FileCursor(_Cursor):
    kind: Literal["file"] = "file"
    dev: int
    ino: int
    offset: int = Field(ge=0)  # just after the last line handed on
    head: str = ""  # digest of the file's first bytes: an inode reused by a new file differs


class KmsgCursor(_Cursor):
    kind: Literal["kmsg"] = "kmsg"
    boot_id: str
    seq: int = Field(ge=0)  # of the last record handed on


class JournalCursor(_Cursor):
    kind: Literal["journal"] = "journal"
    cursor: str = Field(min_length=1)  # journald's __CURSOR of the last entry


Cursor = Annotated[FileCursor | KmsgCursor | JournalCursor, Field(discriminator="kind")]
_CURSOR: TypeAdapter[FileCursor | KmsgCursor | JournalCursor] = TypeAdapter(Cursor)


@dataclass(frozen=True)
class Line:
    """A kernel-log line and the position just after it. ``text`` None: a position
    only (where a source without a cursor starts), nothing to judge."""

    text: str | None
    cursor: FileCursor | KmsgCursor | JournalCursor | None


class CursorFile:
    """The cursor on disk: ``{"saved_at": <unix time>, "cursor": {...}}``."""

    def __init__(
        self, path: Path, *, max_age_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.max_age_s = max_age_s
        self._clock = clock

    def load(self) -> FileCursor | KmsgCursor | JournalCursor | None:
        """The saved cursor; None (and one log line) when there is none to resume from."""
        try:
            data = json.loads(self.path.read_text())
            cursor = _CURSOR.validate_python(data["cursor"])
            age = self._clock() - float(data["saved_at"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
            log.warning("kernel-log cursor %s unreadable (%s); starting at the end", self.path, exc)
            return None
        if age > self.max_age_s:
            log.warning(
                "kernel-log cursor %s is %.0f s old (over %g s); reading from the end",
                self.path,
                age,
                self.max_age_s,
            )
            return None
        return cursor

    def save(self, cursor: FileCursor | KmsgCursor | JournalCursor) -> None:
        doc = {"saved_at": self._clock(), "cursor": cursor.model_dump(mode="json")}
        atomic_write(self.path, json.dumps(doc) + "\n", sync=True)


class CursorKeeper:
    """Which cursor may be saved, from the watcher's lines and the ticks' spooling.

    The watcher calls :meth:`read` for every line, ``event=True`` when the line gave an
    event it queued (call it before queueing); a tick calls :meth:`spooled` with how
    many queued events it drained once their report is spooled (a tick drains them
    all, oldest first), then :meth:`commit`.
    """

    def __init__(
        self,
        store: CursorFile,
        start: FileCursor | KmsgCursor | JournalCursor | None,
        *,
        refresh_s: float = REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._read = start  # just after the last line read
        self._held: deque[FileCursor | KmsgCursor | JournalCursor | None] = deque()
        self._saved: FileCursor | KmsgCursor | JournalCursor | None = None  # first commit saves
        self._saved_at = float("-inf")
        self._refresh_s = refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failing = False  # saving fails (a full disk): warned once, not every tick

    def read(self, line: Line, *, event: bool = False) -> None:
        with self._lock:
            if event:
                self._held.append(self._read)  # the position just before this line
            if line.cursor is not None:
                self._read = line.cursor

    def spooled(self, count: int) -> None:
        with self._lock:
            for _ in range(min(count, len(self._held))):
                self._held.popleft()

    def savable(self) -> FileCursor | KmsgCursor | JournalCursor | None:
        with self._lock:
            return self._held[0] if self._held else self._read

    def commit(self) -> None:
        """Save the savable cursor if it moved (or was saved ``refresh_s`` ago)."""
        cursor = self.savable()
        now = self._clock()
        if cursor is None or (cursor == self._saved and now - self._saved_at < self._refresh_s):
            return
        try:
            self._store.save(cursor)
        except OSError as exc:
            if not self._failing:
                log.warning("cannot save kernel-log cursor %s: %s", self._store.path, exc)
            self._failing = True
            return
        if self._failing:
            log.info("kernel-log cursor %s saved again", self._store.path)
            self._failing = False
        self._saved, self._saved_at = cursor, now
