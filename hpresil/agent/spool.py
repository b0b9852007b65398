"""The agent's outbox: reports on disk until the controller acknowledges them.

One JSON file per report in ``agent.spool_dir`` (``{node}`` expands), named by a
zero-padded sequence number so that name order is creation order, written
atomically (temporary file, fsync, rename). :meth:`Spool.flush` delivers oldest
first and deletes a file only once the controller answered (an ack for a duplicate
counts: the controller already has it). Nothing blocks the queue but the controller
itself:

- :class:`~hpresil.errors.ControllerUnavailable` (unreachable, 408/429/502/503/504) or
  a refused token (401/403) pauses delivery where it is, so order is kept;
- :class:`~hpresil.errors.ControllerFailed` (500 and the like) puts that one report
  off with a doubling back-off and goes on with the ones behind it (which then reach
  the controller before it); after ``max_attempts`` failures it is given up;
- a report the controller refused (4xx), one given up, or a file that no longer
  parses moves to ``rejected/`` (the dead letters) with a ``.reason`` file beside it.
  ``rejected/`` keeps the newest ``max_rejected``.

A report the disk will not take (full, read-only, failing) is held in memory
(:class:`~hpresil.agent.held.Held`) and delivered in its place in sequence order;
it is written to disk once a write succeeds again.

The back-off table lives in memory (one entry per spooled file at most): a restart
gives a failing report ``max_attempts`` more tries. The sequence counter survives
restarts: the larger of the ``seq`` state file and the highest file name, spooled or
rejected.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pydantic import ValidationError

from hpresil.agent.held import MAX_HELD, Held
from hpresil.errors import (
    ControllerFailed,
    ControllerUnavailable,
    HpresilError,
    RejectedByController,
)
from hpresil.fsutil import atomic_write
from hpresil.vocab import Report

log = logging.getLogger(__name__)

MAX_FILES = 100_000
MAX_REJECTED = 1_000
MAX_ATTEMPTS = 10  # failures on the controller before a report is given up
BACKOFF_S = 2.0  # the first wait after a failure; doubles with each one
MAX_BACKOFF_S = 300.0
NOT_ABOUT_THE_REPORT = frozenset({401, 403})  # refusals of this agent, not of one report
_NAME = re.compile(r"^(?P<seq>\d{20})-[A-Za-z0-9_.:-]+\.json$")
_SEQ_FILE = "seq"
REJECTED = "rejected"


class ReportSink(Protocol):
    """Where reports go: :class:`hpresil.client.ControllerClient` or a test double."""

    def post_report(self, report: Report) -> object: ...


Outcome = Literal["delivered", "rejected", "deferred", "gone"]


@dataclass(frozen=True)
class FlushResult:
    delivered: int = 0
    rejected: int = 0  # moved to rejected/: refused, given up, or unreadable
    deferred: int = 0  # left spooled after a failure on the controller, this time or earlier
    remaining: int = 0  # still spooled: the deferred and those behind a pause
    error: str | None = None  # why delivery stopped early (controller unavailable)


@dataclass(frozen=True)
class SpoolTotals:
    """Counts since the spool was opened, for the agent to log or report."""

    delivered: int = 0
    rejected: int = 0
    deferred: int = 0  # failures on the controller that put a report off
    dropped: int = 0  # the oldest, removed for room (spool past max_files, rejected/ past max)
    held: int = 0  # now in memory: the disk would not take them


@dataclass(frozen=True)
class _Retry:
    attempts: int  # failures on the controller so far
    next_at: float  # clock time before which the report is not tried again


class Spool:
    def __init__(
        self,
        directory: Path,
        *,
        max_files: int = MAX_FILES,
        max_rejected: int = MAX_REJECTED,
        max_held: int = MAX_HELD,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_s: float = BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.rejected_dir = directory / REJECTED
        self.max_files = max_files
        self.max_rejected = max_rejected
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            _owner_only(self.directory)
        except OSError as exc:
            raise HpresilError(f"spool {directory}: {exc.strerror or exc}") from None
        self._lock = threading.Lock()  # guards the counter, the file set, the held and totals
        self._flush_lock = threading.Lock()  # guards the back-off table
        for leftover in self.directory.glob(".tmp-*.part"):  # from a crash mid-write
            leftover.unlink(missing_ok=True)
        self._seq = max(self._read_seq_file(), self._highest_file_seq())
        self._count = len(self.pending())  # approximate; recounted before trimming
        self._retries: dict[str, _Retry] = {}  # file name -> its back-off
        self._counts = dict.fromkeys(("delivered", "rejected", "deferred", "dropped"), 0)
        self._rejected_full_told = False  # warn once that rejected/ drops its oldest
        self._held = Held(max_held)

    # --- sequence ---
    def next_seq(self) -> int:
        """A new, never used sequence number (persisted before it is handed out)."""
        with self._lock:
            self._seq += 1
            try:
                atomic_write(self.directory / _SEQ_FILE, f"{self._seq}\n", sync=False)
            except OSError as exc:  # the report's own write tells; counting goes on
                log.debug("sequence %d not saved: %s", self._seq, exc)
            return self._seq

    # --- queue ---
    def put(self, report: Report) -> None:
        """Store ``report`` under its ``seq`` (in memory when the disk refuses); drop
        the oldest past ``max_files``."""
        name = f"{report.seq:020d}-{report.report_id}.json"
        with self._lock:
            self._seq = max(self._seq, report.seq)
            if not self._write(name, report):
                return
            for held_name, held in self._held.writable():
                if not self._write(held_name, held):
                    break
                self._held.pop(held_name)
            if self._count > self.max_files:
                self._trim()

    def _write(self, name: str, report: Report) -> bool:
        """Write one report file (under the lock); hold it when the disk refuses."""
        try:
            atomic_write(self.directory / name, report.model_dump_json(), sync=True)
        except OSError as exc:
            self._held.hold(name, report, str(self.directory), exc)
            return False
        self._count += 1
        return True

    def pending(self) -> list[Path]:
        """Spooled files, oldest first."""
        return sorted(p for p in self.directory.iterdir() if _NAME.match(p.name))

    def __len__(self) -> int:
        with self._lock:
            held = len(self._held)
        return len(self.pending()) + held

    @property
    def totals(self) -> SpoolTotals:
        with self._lock:
            counts = dict(self._counts)
            counts["dropped"] += self._held.dropped
            return SpoolTotals(**counts, held=len(self._held))

    def flush(self, sink: ReportSink) -> FlushResult:
        """Deliver what is spooled and due, oldest first (one flush at a time)."""
        with self._flush_lock:
            names = self._entries()
            self._prune_retries(names)
            counts = {"delivered": 0, "rejected": 0, "deferred": 0, "gone": 0}
            for done, name in enumerate(names):
                if not self._due(name):
                    counts["deferred"] += 1
                    continue
                try:
                    outcome = self._deliver(name, sink)
                except ControllerUnavailable as exc:
                    left = len(names) - done
                    log.debug("delivery paused, %d reports wait: %s", left, exc)
                    return _result(counts, left + counts["deferred"], str(exc))
                counts[outcome] += 1
                self._tally(outcome)
            return _result(counts, counts["deferred"], None)

    def _entries(self) -> list[str]:
        """What waits, by name (name order is sequence order): files and held reports."""
        files = {p.name for p in self.pending()}
        with self._lock:
            return sorted(files.union(self._held.names()))

    def _load(self, name: str) -> Report | None:
        """The report under ``name``; None when it is gone (trimmed meanwhile)."""
        with self._lock:
            held = self._held.get(name)
        if held is not None:
            return held
        try:
            return Report.model_validate_json((self.directory / name).read_bytes())
        except FileNotFoundError:
            return None

    def _deliver(self, name: str, sink: ReportSink) -> Outcome:
        try:
            report = self._load(name)
        except (OSError, ValidationError, ValueError) as exc:
            reason = f"unreadable spool file: {str(exc).splitlines()[0]}"
            log.warning("%s: %s; moved to %s/", name, reason, REJECTED)
            self._set_aside(name, reason)
            return "rejected"
        if report is None:
            return "gone"
        try:
            sink.post_report(report)
        except RejectedByController as exc:
            return self._refused(name, exc)
        except ControllerFailed as exc:
            return self._failed(name, exc)
        self._remove(name)
        self._retries.pop(name, None)
        return "delivered"

    def _remove(self, name: str) -> None:
        with self._lock:
            if self._held.pop(name) is not None:
                return
        (self.directory / name).unlink(missing_ok=True)
        self._forget()

    def _refused(self, name: str, exc: RejectedByController) -> Outcome:
        if exc.status_code in NOT_ABOUT_THE_REPORT:  # a wrong token: every report would be
            raise ControllerUnavailable(str(exc)) from None
        log.warning("controller refused report %s: %s", name, exc)
        self._set_aside(name, str(exc))
        return "rejected"

    def _failed(self, name: str, exc: ControllerFailed) -> Outcome:
        """Put the report off with a doubling wait, or give it up after ``max_attempts``."""
        attempts = self._retries.pop(name, _Retry(0, 0.0)).attempts + 1
        if attempts >= self.max_attempts:
            log.warning("gave up report %s after %d attempts: %s", name, attempts, exc)
            self._set_aside(name, f"gave up after {attempts} attempts: {exc}")
            return "rejected"
        wait = min(self.max_backoff_s, self.backoff_s * 2.0 ** min(attempts - 1, 60))
        self._retries[name] = _Retry(attempts, self._clock() + wait)
        tell = log.warning if attempts == 1 else log.debug
        tell("report %s put off %g s (attempt %d): %s", name, wait, attempts, exc)
        return "deferred"

    def _due(self, name: str) -> bool:
        retry = self._retries.get(name)
        return retry is None or retry.next_at <= self._clock()

    def _prune_retries(self, names: list[str]) -> None:
        """Forget the back-off of reports no longer waiting (given up, trimmed)."""
        waiting = set(names)
        for name in [n for n in self._retries if n not in waiting]:
            del self._retries[name]

    def _tally(self, outcome: Outcome) -> None:
        if outcome != "gone":
            with self._lock:
                self._counts[outcome] += 1

    def _set_aside(self, name: str, reason: str) -> None:
        """Move a report to ``rejected/`` with its reason (dropped and counted when the
        disk will not take it)."""
        with self._lock:
            held = self._held.pop(name)
        try:
            self.rejected_dir.mkdir(exist_ok=True)
            if held is None:
                os.replace(self.directory / name, self.rejected_dir / name)
                self._forget()
            else:
                atomic_write(self.rejected_dir / name, held.model_dump_json(), sync=False)
            atomic_write(self.rejected_dir / (name + ".reason"), reason + "\n", sync=False)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("cannot keep %s in %s/: %s; dropped", name, REJECTED, exc.strerror or exc)
            with self._lock:
                self._counts["dropped"] += 1
            return
        self._trim_rejected()

    def _trim_rejected(self) -> None:
        """Keep the newest ``max_rejected`` set aside (the newest keeps the seq counter)."""
        aside = sorted(p for p in self.rejected_dir.iterdir() if _NAME.match(p.name))
        excess = len(aside) - self.max_rejected
        if excess <= 0:
            return
        if not self._rejected_full_told:
            self._rejected_full_told = True
            log.warning("%s/ holds %d reports; dropping the oldest", REJECTED, len(aside))
        for path in aside[:excess]:
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".reason").unlink(missing_ok=True)
        with self._lock:
            self._counts["dropped"] += excess

    def _forget(self) -> None:
        with self._lock:
            self._count = max(0, self._count - 1)

    def _trim(self) -> None:
        files = self.pending()
        excess = len(files) - self.max_files
        if excess > 0:
            log.warning("spool holds %d reports; dropping the %d oldest", len(files), excess)
            for path in files[:excess]:
                path.unlink(missing_ok=True)
            self._counts["dropped"] += excess
        self._count = len(files) - max(excess, 0)

    def _read_seq_file(self) -> int:
        try:
            return int((self.directory / _SEQ_FILE).read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _highest_file_seq(self) -> int:
        best = 0
        for folder in (self.directory, self.rejected_dir):
            if folder.is_dir():
                for p in folder.iterdir():
                    m = _NAME.match(p.name)
                    if m:
                        best = max(best, int(m.group("seq")))
        return best


def _result(counts: dict[str, int], remaining: int, error: str | None) -> FlushResult:
    return FlushResult(
        delivered=counts["delivered"],
        rejected=counts["rejected"],
        deferred=counts["deferred"],
        remaining=remaining,
        error=error,
    )


def _owner_only(directory: Path) -> None:
    """Reports name nodes, GPUs and jobs: a spool others can read or enter is tightened
    to 0700 (one left by an older version or made by hand), with a warning."""
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o077:
        os.chmod(directory, mode & 0o700)
        log.warning(
            "spool %s was mode %04o, open to others: now %04o", directory, mode, mode & 0o700
        )
