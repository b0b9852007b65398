"""Kernel-log sources: where the agent reads kernel messages from.

``kernel_log.source`` picks one:

* ``kmsg``: ``/dev/kmsg`` read non-blocking from its end (records overwritten
  before they were read answer EPIPE; reading simply continues);
* ``journal``: ``journalctl -k -f -n 0 -o cat`` as a child process, killed on stop;
* ``file``: a file followed from its end like ``tail -F`` (polled every
  ``poll_s``; survives the file not existing yet, truncation and rotation). The lab
  uses one file per node (``{node}`` expands) because its nodes share one kernel.

Every source's ``follow(stop)`` yields message lines until ``stop`` is set.
:func:`follow_forever` wraps a source so that a failure logs one line and is retried
after a pause instead of ending the agent.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from hpresil.adapters import proc
from hpresil.config import KernelLogConfig, expand

log = logging.getLogger(__name__)

KMSG_PATH = Path("/dev/kmsg")
JOURNAL_ARGV = ("journalctl", "-k", "-f", "-n", "0", "-o", "cat")
_READ_SIZE = 65536
_KMSG_RECORD_MAX = 8192  # one read returns one record; larger than any record


class KernelLogSource(Protocol):
    def follow(self, stop: threading.Event) -> Iterator[str]: ...


def open_source(cfg: KernelLogConfig, node: str) -> KernelLogSource:
    if cfg.source == "file":
        return FileSource(expand(cfg.path, node), cfg.poll_s)
    if cfg.source == "journal":
        return JournalSource(poll_s=cfg.poll_s)
    return KmsgSource(KMSG_PATH, cfg.poll_s)


class FileSource:
    """Follow ``path`` from its end, re-opening it after rotation.

    A file that did not exist when following began (or that replaced a rotated one)
    is read from its start, so nothing written to it is missed.
    """

    def __init__(self, path: Path, poll_s: float = 0.2) -> None:
        self.path = path
        self.poll_s = poll_s

    def follow(self, stop: threading.Event) -> Iterator[str]:
        fh = None
        at_end = True  # the first file found is followed from its end
        pending = b""
        try:
            while not stop.is_set():
                if fh is None:
                    fh = self._open(at_end)
                    at_end = False
                    pending = b""
                    if fh is None:
                        stop.wait(self.poll_s)
                        continue
                chunk = fh.read(_READ_SIZE)
                if chunk:
                    *lines, pending = (pending + chunk).split(b"\n")
                    for raw in lines:
                        yield raw.decode(errors="replace")
                    continue
                state = self._changed(fh)
                if state == "rotated":
                    if pending:
                        yield pending.decode(errors="replace")
                    fh.close()
                    fh = None
                    continue
                if state == "truncated":
                    log.debug("%s truncated; reading from its start", self.path)
                    fh.seek(0)
                    pending = b""
                    continue
                stop.wait(self.poll_s)
        finally:
            if fh is not None:
                fh.close()

    def _open(self, at_end: bool) -> BinaryIO | None:
        try:
            fh = self.path.open("rb")
        except FileNotFoundError:
            return None
        if at_end:
            fh.seek(0, os.SEEK_END)
        log.debug("following %s from offset %d", self.path, fh.tell())
        return fh

    def _changed(self, fh: BinaryIO) -> Literal["rotated", "truncated", "same"]:
        """Whether the path now names another file, or ours shrank below our offset."""
        try:
            now = self.path.stat()
        except FileNotFoundError:
            return "same"  # moved away and not recreated yet: keep draining the old one
        mine = os.fstat(fh.fileno())
        if (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
            return "rotated"
        if mine.st_size < fh.tell():
            return "truncated"
        return "same"


class KmsgSource:
    """``/dev/kmsg`` from its end: one ``prio,seq,usec,flags;message`` record per read."""

    def __init__(self, path: Path = KMSG_PATH, poll_s: float = 0.2) -> None:
        self.path = path
        self.poll_s = poll_s

    def follow(self, stop: threading.Event) -> Iterator[str]:
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            os.lseek(fd, 0, os.SEEK_END)
            while not stop.is_set():
                try:
                    record = os.read(fd, _KMSG_RECORD_MAX)
                except BlockingIOError:
                    select.select([fd], [], [], self.poll_s)
                    continue
                except OSError as exc:
                    if exc.errno == errno.EPIPE:  # records overwritten before we read them
                        log.debug("%s: some records were overwritten before being read", self.path)
                        continue
                    raise
                if record:
                    yield kmsg_message(record.decode(errors="replace"))
        finally:
            os.close(fd)


def kmsg_message(record: str) -> str:
    """The message part of a /dev/kmsg record (continuation lines dropped)."""
    _, sep, rest = record.partition(";")
    text = rest if sep else record
    return text.split("\n", 1)[0]


class JournalSource:
    """The kernel messages journald receives, from a ``journalctl -f`` child."""

    def __init__(self, argv: Sequence[str] = JOURNAL_ARGV, poll_s: float = 0.2) -> None:
        self.argv = tuple(argv)
        self.poll_s = poll_s

    def follow(self, stop: threading.Event) -> Iterator[str]:
        yield from proc.stream(self.argv, stop, poll_s=self.poll_s)


def follow_forever(
    source: KernelLogSource, stop: threading.Event, *, retry_s: float = 5.0
) -> Iterator[str]:
    """``source.follow`` restarted after any failure: one log line, a pause, again.
    The same failure again is logged at debug level only."""
    last = ""
    while not stop.is_set():
        try:
            yield from source.follow(stop)
        except Exception as exc:
            level = logging.DEBUG if str(exc) == last else logging.WARNING
            last = str(exc)
            log.log(level, "kernel log source failed (%s); retrying in %g s", exc, retry_s)
            stop.wait(retry_s)
        else:
            if not stop.is_set():  # ended by itself: do not spin
                stop.wait(retry_s)
