"""Signs of a job's progress, remembered across ticks: output growth, the job helper's
heartbeat (or a progress file the job touches) and its newest checkpoint.

The controller decides that a job hangs; the agent only says when it last saw the job
move. Three signs, the newest wins:

* the heartbeat the job helper writes atomically as JSON (``at`` epoch, ``step``);
  a progress file named by ``HPRESIL_PROGRESS_FILE`` may be any file the job touches,
  so only its modification time counts;
* growth of the job's output file, as the agent sees it: sizes are compared on
  monotonic time (a wall-clock step cannot fake progress) and turned into wall-clock
  time when reported. A file seen for the first time counts from its modification
  time, so an agent restarted beside a hung job does not see fresh progress;
* checkpoints are looked up on a thread at most every ``every_s`` per job: a hung
  network file system delays the answer, never the tick (each tick waits at most
  ``wait_s`` for all look-ups together and reports the last answer meanwhile).

A time that is not one (a heartbeat's ``at`` of ``NaN``, infinity or the year 10^9, a
modification time no datetime can hold) is no sign of progress: it never raises out of
the jobs fact.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

from hpresil.clock import Clock, utcnow

if TYPE_CHECKING:
    from hpresil.ckpt.model import Checkpoint  # a type only: _latest imports the scanner

log = logging.getLogger(__name__)

ProgressSource = Literal["heartbeat", "progress_file", "output"]
HEARTBEAT_MAX_BYTES = 64 * 1024  # a heartbeat is a small JSON record; anything larger is not one


@dataclass(frozen=True, slots=True)
class FileState:
    path: str
    size: int
    mtime: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class Progress:
    at: datetime
    source: ProgressSource
    step: int | None = None


@dataclass(frozen=True, slots=True)
class CheckpointSeen:
    path: str
    step: int | None
    committed_at: datetime | None


FindCheckpoint: TypeAlias = "Callable[[Path], Checkpoint | None]"


def file_state(path: str | os.PathLike[str]) -> FileState | None:
    """Size and modification time of a regular file, or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return FileState(os.fspath(path), st.st_size, st.st_mtime)


def read_heartbeat(path: Path, job_id: int) -> tuple[datetime, int | None] | None:
    """``(at, step)`` from the job helper's heartbeat, or None when it is missing,
    unreadable, names another job or its ``at`` is not a time (:func:`utc`)."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(HEARTBEAT_MAX_BYTES + 1)
        data = json.loads(raw) if len(raw) <= HEARTBEAT_MAX_BYTES else None
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    at, step, owner = data.get("at"), data.get("step"), data.get("job_id")
    when = None if isinstance(at, bool) or not isinstance(at, int | float) else utc(at)
    if when is None:
        return None
    if owner is not None and owner != job_id:
        return None
    return when, step if isinstance(step, int) and not isinstance(step, bool) else None


class _Output:
    """The output file of one job: its last size and when it last grew (monotonic)."""

    __slots__ = ("grew", "path", "size")

    def __init__(self, state: FileState, grew: float) -> None:
        self.path, self.size, self.grew = state.path, state.size, grew


class _Heartbeat:
    """The last heartbeat read, and the file version it came from."""

    __slots__ = ("at", "step", "version")

    def __init__(self, version: tuple[str, float, int], at: datetime, step: int | None) -> None:
        self.version, self.at, self.step = version, at, step


class _Lookup:
    """One checkpoint look-up on a daemon thread (a hung file system keeps the thread,
    never the caller)."""

    def __init__(self, find: FindCheckpoint, root: Path) -> None:
        self.done = threading.Event()
        self.result: CheckpointSeen | None = None
        self.error: str | None = None
        self.started = time.monotonic()
        self._find, self._root = find, root
        threading.Thread(target=self._run, name="ckpt-lookup", daemon=True).start()

    def _run(self) -> None:
        try:
            found = self._find(self._root)
            self.result = None if found is None else checkpoint_seen(found)
        except Exception as exc:  # a broken layout must not end the agent
            self.error = str(exc) or repr(exc)
        finally:
            self.done.set()


class _Checkpoints:
    __slots__ = ("checked", "error", "last", "lookup")

    def __init__(self) -> None:
        self.checked = float("-inf")  # monotonic time the last look-up started
        self.last: CheckpointSeen | None = None
        self.lookup: _Lookup | None = None
        self.error: str | None = None  # the last look-up's failure, logged once


class JobProgress:
    """Progress and checkpoints per job key (a job and its restart count), across ticks."""

    def __init__(
        self,
        *,
        find_checkpoint: FindCheckpoint | None = None,
        every_s: float = 15.0,
        wait_s: float = 2.0,
        clock: Clock = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._find = find_checkpoint or _latest
        self._every = every_s
        self._wait = wait_s
        self._clock = clock
        self._monotonic = monotonic
        self._outputs: dict[Hashable, _Output] = {}
        self._beats: dict[Hashable, _Heartbeat] = {}
        self._ckpts: dict[Hashable, _Checkpoints] = {}
        self._deadline = 0.0

    def begin(self) -> None:
        """Start a collection: the checkpoint waits of this collection share ``wait_s``."""
        self._deadline = time.monotonic() + self._wait

    def forget(self, keep: Iterable[Hashable]) -> None:
        """Drop what is remembered about jobs no longer here."""
        kept = set(keep)
        for table in (self._outputs, self._beats, self._ckpts):
            for key in [k for k in table if k not in kept]:
                del table[key]

    def progress(
        self,
        key: Hashable,
        job_id: int,
        output: FileState | None,
        progress_file: Path | None,
        foreign: bool,
    ) -> Progress | None:
        """The newest sign of progress of job ``job_id``: heartbeat (or foreign progress
        file, by modification time) and output growth; the step is the heartbeat's."""
        beat = self._beat(key, job_id, progress_file, foreign)
        found = [s for s in (self._output(key, output), beat) if s is not None]
        if not found:
            return None
        newest = max(found, key=lambda p: p.at)
        return Progress(newest.at, newest.source, beat.step if beat else None)

    def checkpoint(self, key: Hashable, root: Path) -> CheckpointSeen | None:
        """The newest checkpoint under ``root``, looked up at most every ``every_s``."""
        entry = self._ckpts.setdefault(key, _Checkpoints())
        now = self._monotonic()
        if entry.lookup is None and now - entry.checked >= self._every:
            entry.lookup, entry.checked = _Lookup(self._find, root), now
        lookup = entry.lookup
        if lookup is not None:
            lookup.done.wait(max(0.0, self._deadline - time.monotonic()))
            if lookup.done.is_set():
                entry.lookup = None
                if lookup.error is None:
                    entry.last = lookup.result
                elif lookup.error != entry.error:
                    log.warning("checkpoint look-up in %s failed: %s", root, lookup.error)
                entry.error = lookup.error
            else:
                ago = time.monotonic() - lookup.started
                log.debug("checkpoint look-up in %s still running (%.0f s)", root, ago)
        return entry.last

    # --- signs ---
    def _output(self, key: Hashable, state: FileState | None) -> Progress | None:
        if state is None:
            return None
        now = self._monotonic()
        seen = self._outputs.get(key)
        if seen is None or seen.path != state.path:
            if utc(state.mtime) is None:  # no time to count from
                self._outputs.pop(key, None)
                return None
            # first sight: it last grew when it was last written, as far as we know
            age = max(0.0, self._clock().timestamp() - state.mtime)
            seen = self._outputs[key] = _Output(state, now - age)
        elif state.size > seen.size:
            seen.size, seen.grew = state.size, now
        elif state.size < seen.size:  # truncated or replaced: a new baseline, no progress
            seen.size = state.size
        return Progress(self._wall(seen.grew, now), "output")

    def _beat(
        self, key: Hashable, job_id: int, path: Path | None, foreign: bool
    ) -> Progress | None:
        if path is None:
            return None
        state = file_state(path)
        if state is None:
            return None
        if foreign:  # any file the job touches: only its modification time counts
            touched = utc(min(state.mtime, self._clock().timestamp()))
            return None if touched is None else Progress(touched, "progress_file")
        version = (state.path, state.mtime, state.size)
        beat = self._beats.get(key)
        if beat is None or beat.version != version:
            read = read_heartbeat(path, job_id)
            if read is None:
                return None if beat is None else Progress(beat.at, "heartbeat", beat.step)
            beat = self._beats[key] = _Heartbeat(version, *read)
        return Progress(beat.at, "heartbeat", beat.step)

    def _wall(self, monotonic_at: float, monotonic_now: float) -> datetime:
        return self._clock() - timedelta(seconds=max(0.0, monotonic_now - monotonic_at))


def checkpoint_seen(found: Checkpoint) -> CheckpointSeen:
    at = found.committed_at
    return CheckpointSeen(str(found.path), found.step, None if at is None else utc(at))


def utc(epoch: float) -> datetime | None:
    """``epoch`` as an aware UTC datetime, or None when it is not a time one can hold
    (NaN, infinite, or outside the years 1 to 9999)."""
    try:
        return datetime.fromtimestamp(epoch, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _latest(root: Path) -> Checkpoint | None:
    from hpresil.ckpt import latest

    return latest(root)
