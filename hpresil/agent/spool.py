"""The agent's outbox: reports on disk until the controller acknowledges them.

One JSON file per report in ``agent.spool_dir`` (``{node}`` expands), named by a
zero-padded sequence number so that name order is creation order, written
atomically (temporary file, fsync, rename). :meth:`Spool.flush` delivers oldest
first and deletes a file only once the controller answered (an ack for a duplicate
counts: the controller already has it). It stops at the first
:class:`~hpresil.errors.ControllerUnavailable` so order is kept; a report the
controller refused (4xx), or a file that no longer parses, moves to ``rejected/``
with a ``.reason`` file beside it and never blocks the queue.

The sequence counter survives restarts: the larger of the ``seq`` state file and
the highest file name, spooled or rejected.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pydantic import ValidationError

from hpresil.errors import ControllerUnavailable, HpresilError, RejectedByController
from hpresil.fsutil import atomic_write
from hpresil.vocab import Report

log = logging.getLogger(__name__)

MAX_FILES = 100_000
_NAME = re.compile(r"^(?P<seq>\d{20})-[A-Za-z0-9_.:-]+\.json$")
_SEQ_FILE = "seq"
REJECTED = "rejected"


class ReportSink(Protocol):
    """Where reports go: :class:`hpresil.client.ControllerClient` or a test double."""

    def post_report(self, report: Report) -> object: ...


@dataclass(frozen=True)
class FlushResult:
    delivered: int = 0
    rejected: int = 0
    remaining: int = 0
    error: str | None = None  # why delivery stopped early (controller unavailable)


class Spool:
    def __init__(self, directory: Path, *, max_files: int = MAX_FILES) -> None:
        self.directory = directory
        self.rejected_dir = directory / REJECTED
        self.max_files = max_files
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HpresilError(f"spool {directory}: {exc.strerror or exc}") from None
        self._lock = threading.Lock()  # guards the counter and the file set
        self._flush_lock = threading.Lock()
        for leftover in self.directory.glob(".tmp-*.part"):  # from a crash mid-write
            leftover.unlink(missing_ok=True)
        self._seq = max(self._read_seq_file(), self._highest_file_seq())
        self._count = len(self.pending())  # approximate; recounted before trimming

    # --- sequence ---
    def next_seq(self) -> int:
        """A new, never used sequence number (persisted before it is handed out)."""
        with self._lock:
            self._seq += 1
            atomic_write(self.directory / _SEQ_FILE, f"{self._seq}\n", sync=False)
            return self._seq

    # --- queue ---
    def put(self, report: Report) -> Path:
        """Store ``report`` under its ``seq``; drop the oldest past ``max_files``."""
        name = f"{report.seq:020d}-{report.report_id}.json"
        with self._lock:
            self._seq = max(self._seq, report.seq)
            path = self.directory / name
            atomic_write(path, report.model_dump_json(), sync=True)
            self._count += 1
            if self._count > self.max_files:
                self._trim()
        return path

    def pending(self) -> list[Path]:
        """Spooled files, oldest first."""
        return sorted(p for p in self.directory.iterdir() if _NAME.match(p.name))

    def __len__(self) -> int:
        return len(self.pending())

    def flush(self, sink: ReportSink) -> FlushResult:
        """Deliver what is spooled, oldest first (one flush at a time)."""
        with self._flush_lock:
            counts = {"delivered": 0, "rejected": 0, "gone": 0}
            files = self.pending()
            for done, path in enumerate(files):
                try:
                    outcome = self._deliver(path, sink)
                except ControllerUnavailable as exc:
                    left = len(files) - done
                    log.debug("delivery paused, %d reports wait: %s", left, exc)
                    return FlushResult(counts["delivered"], counts["rejected"], left, str(exc))
                counts[outcome] += 1
            return FlushResult(counts["delivered"], counts["rejected"], 0)

    def _deliver(self, path: Path, sink: ReportSink) -> Literal["delivered", "rejected", "gone"]:
        try:
            report = Report.model_validate_json(path.read_bytes())
        except FileNotFoundError:  # dropped by _trim meanwhile
            return "gone"
        except (OSError, ValidationError, ValueError) as exc:
            reason = f"unreadable spool file: {str(exc).splitlines()[0]}"
            log.warning("%s: %s; moved to %s/", path.name, reason, REJECTED)
            self._set_aside(path, reason)
            return "rejected"
        try:
            sink.post_report(report)
        except RejectedByController as exc:
            log.warning("controller refused report %s: %s", path.name, exc)
            self._set_aside(path, str(exc))
            return "rejected"
        path.unlink(missing_ok=True)
        self._forget()
        return "delivered"

    def _set_aside(self, path: Path, reason: str) -> None:
        self.rejected_dir.mkdir(exist_ok=True)
        try:
            os.replace(path, self.rejected_dir / path.name)
        except FileNotFoundError:
            return
        atomic_write(self.rejected_dir / (path.name + ".reason"), reason + "\n", sync=False)
        self._forget()

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
