"""Kernel-log sources: where the agent reads kernel messages from.

``kernel_log.source`` picks one:

* ``kmsg``: ``/dev/kmsg`` read non-blocking (records overwritten before they were
  read answer EPIPE; reading simply continues);
* ``journal``: ``journalctl -k -f -o json`` as a child process, killed on stop;
* ``file``: a file followed like ``tail -F`` (polled every ``poll_s``; survives the
  file not existing yet, truncation and rotation). The lab uses one file per node
  (``{node}`` expands) because its nodes share one kernel.

Every source's ``lines(stop, after)`` yields :class:`~hpresil.kernlog.cursor.Line`
(the text and the position after it) until ``stop`` is set, starting after the
cursor ``after`` (:mod:`hpresil.kernlog.cursor` says when it is saved):

* file: at ``after``'s offset when the path is still that file; when it was rotated
  meanwhile, the rest of the old file first if it is still beside it under another
  name (``kern.log.1``), then the new file from its start;
* kmsg: from the oldest record in the ring buffer, skipping those with a sequence
  number up to ``after``'s (all of them are new when the machine booted since);
* journal: ``--after-cursor``.

With no cursor a source starts at the end, as before, and first yields that position
(a :class:`Line` without text) so that it can be saved. :func:`follow_forever` wraps
a source so that a failure logs one line and is retried after a pause, from the last
position, instead of ending the agent.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import select
import threading
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from hpresil.adapters import proc
from hpresil.config import KernelLogConfig, expand
from hpresil.kernlog.cursor import FileCursor, JournalCursor, KmsgCursor, Line

log = logging.getLogger(__name__)

KMSG_PATH = Path("/dev/kmsg")
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
JOURNAL_ARGV = ("journalctl", "-k", "-f", "-o", "json")
_READ_SIZE = 65536
_KMSG_RECORD_MAX = 8192  # one read returns one record; larger than any record
_KMSG_SEQ = re.compile(r"^\d+,(?P<seq>\d+),")
_HEAD_BYTES = 256  # a file's identity besides its inode: its first bytes
_ROTATED_MAX = 32  # files beside a rotated one looked at for its new name

AnyCursor = FileCursor | KmsgCursor | JournalCursor


class KernelLogSource(Protocol):
    def lines(self, stop: threading.Event, after: AnyCursor | None) -> Generator[Line]: ...


def open_source(cfg: KernelLogConfig, node: str) -> KernelLogSource:
    if cfg.source == "file":
        return FileSource(expand(cfg.path, node), cfg.poll_s)
    if cfg.source == "journal":
        return JournalSource(poll_s=cfg.poll_s)
    return KmsgSource(KMSG_PATH, cfg.poll_s)


class FileSource:
    """Follow ``path``, re-opening it after rotation.

    A file that did not exist when following began (or that replaced a rotated one)
    is read from its start, so nothing written to it is missed.
    """

    def __init__(self, path: Path, poll_s: float = 0.2) -> None:
        self.path = path
        self.poll_s = poll_s

    def lines(self, stop: threading.Event, after: AnyCursor | None) -> Generator[Line]:
        start = after if isinstance(after, FileCursor) else None
        fh = self._resume(start) if start is not None and start != NO_FILE_YET else None
        at_end = start is None  # with no cursor, the file found at once is read from its end
        pending = b""
        try:
            while not stop.is_set():
                if fh is None:
                    fh, was_at_end, at_end = self._open(at_end), at_end, False
                    pending = b""
                    if fh is None:
                        if was_at_end:  # no file yet: when it comes, it is read whole
                            yield Line(None, NO_FILE_YET)
                        stop.wait(self.poll_s)
                        continue
                    if was_at_end:
                        yield Line(None, _file_cursor(fh, fh.tell()))
                chunk = fh.read(_READ_SIZE)
                if chunk:
                    offset = fh.tell() - len(pending) - len(chunk)
                    *lines, pending = (pending + chunk).split(b"\n")
                    for raw in lines:
                        offset += len(raw) + 1
                        yield Line(raw.decode(errors="replace"), _file_cursor(fh, offset))
                    continue
                state = self._changed(fh)
                if state == "rotated":
                    if pending:
                        yield Line(pending.decode(errors="replace"), _file_cursor(fh, fh.tell()))
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

    def _resume(self, cursor: FileCursor) -> BinaryIO | None:
        """The file ``cursor`` names at its offset: the path itself, or the name it was
        rotated to; None when it is gone (the path is then read from its start)."""
        for path in (self.path, *self._rotated_names()):
            try:
                fh = path.open("rb")
            except OSError:
                continue
            st = os.fstat(fh.fileno())
            same = (st.st_dev, st.st_ino) == (cursor.dev, cursor.ino)
            if not same or _file_cursor(fh, cursor.offset).head != cursor.head:
                fh.close()
                continue
            fh.seek(cursor.offset if cursor.offset <= st.st_size else 0)  # else: truncated
            log.info("kernel log: resuming %s at offset %d", path, fh.tell())
            return fh
        log.warning("kernel log: the file last read is gone; reading %s from its start", self.path)
        return None

    def _rotated_names(self) -> list[Path]:
        try:
            beside = sorted(self.path.parent.glob(self.path.name + "?*"))
        except OSError:
            return []
        return beside[:_ROTATED_MAX]

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


# The cursor saved while the log file does not exist yet: it names no file, so a
# restart reads the file from its start when there is one (``_resume`` finds none).
NO_FILE_YET = FileCursor(dev=0, ino=0, offset=0)


def _file_cursor(fh: BinaryIO, offset: int) -> FileCursor:
    st = os.fstat(fh.fileno())
    head = os.pread(fh.fileno(), min(offset, _HEAD_BYTES), 0)
    digest = hashlib.blake2b(head, digest_size=16).hexdigest()
    return FileCursor(dev=st.st_dev, ino=st.st_ino, offset=offset, head=digest)


class KmsgSource:
    """``/dev/kmsg``: ``prio,seq,usec,flags;message`` records, one per read (a regular
    file of such records reads the same, several records a read)."""

    def __init__(
        self, path: Path = KMSG_PATH, poll_s: float = 0.2, *, boot_id_path: Path = BOOT_ID_PATH
    ) -> None:
        self.path = path
        self.poll_s = poll_s
        self.boot_id_path = boot_id_path

    def lines(self, stop: threading.Event, after: AnyCursor | None) -> Generator[Line]:
        boot_id = self.boot_id_path.read_text().strip()
        last = -1  # records up to this sequence number were handed on already
        if isinstance(after, KmsgCursor):
            if after.boot_id == boot_id:
                last = after.seq
            else:
                log.info("kernel log: booted since the last record read; reading all of kmsg")
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            records = self._records(fd, stop)
            if not isinstance(after, KmsgCursor):  # no cursor: the end, as a position
                last = self._skip_to_end(records)
                yield Line(None, KmsgCursor(boot_id=boot_id, seq=last) if last >= 0 else None)
            for record in records:
                if record is None:
                    continue
                seq = kmsg_seq(record)
                if seq is not None and seq <= last:
                    continue
                if seq is not None:
                    last = seq
                cursor = KmsgCursor(boot_id=boot_id, seq=last) if last >= 0 else None
                yield Line(kmsg_message(record), cursor)
        finally:
            os.close(fd)

    @staticmethod
    def _skip_to_end(records: Iterator[str | None]) -> int:
        last = -1
        for record in records:
            if record is None:  # nothing more to read now: the end
                return last
            seq = kmsg_seq(record)
            last = seq if seq is not None else last
        return last

    def _records(self, fd: int, stop: threading.Event) -> Iterator[str | None]:
        """Records as read; None each time there is nothing more to read for now."""
        pending = ""
        while not stop.is_set():
            try:
                chunk = os.read(fd, _KMSG_RECORD_MAX)
            except BlockingIOError:
                yield None
                select.select([fd], [], [], self.poll_s)
                continue
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # records overwritten before we read them
                    log.debug("%s: some records were overwritten before being read", self.path)
                    continue
                raise
            if not chunk:  # a regular file standing in for /dev/kmsg: its end
                yield None
                stop.wait(self.poll_s)
                continue
            records, pending = _split_records(pending + chunk.decode(errors="replace"))
            yield from records


def _split_records(text: str) -> tuple[list[str], str]:
    """Complete records in ``text`` (a record's continuation lines start with a space)
    and the unfinished rest."""
    *lines, rest = text.split("\n")
    records: list[str] = []
    for line in lines:
        if line.startswith(" ") and records:
            records[-1] += "\n" + line
        elif line:
            records.append(line)
    return records, rest


def kmsg_seq(record: str) -> int | None:
    m = _KMSG_SEQ.match(record)
    return int(m.group("seq")) if m else None


def kmsg_message(record: str) -> str:
    """The message part of a /dev/kmsg record (continuation lines dropped)."""
    _, sep, rest = record.partition(";")
    text = rest if sep else record
    return text.split("\n", 1)[0]


class JournalSource:
    """The kernel messages journald receives, from a ``journalctl -f -o json`` child.
    Output that is not a JSON entry (a warning on stderr) is passed on as text."""

    def __init__(self, argv: Sequence[str] = JOURNAL_ARGV, poll_s: float = 0.2) -> None:
        self.argv = tuple(argv)
        self.poll_s = poll_s

    def lines(self, stop: threading.Event, after: AnyCursor | None) -> Generator[Line]:
        resume = after if isinstance(after, JournalCursor) else None
        # -k implies this boot: after a reboot --after-cursor gives all of it.
        # No cursor: the newest entry is shown (-n 1) only to learn its cursor.
        tail = (f"--after-cursor={resume.cursor}",) if resume else ("-n", "1")
        cursor: JournalCursor | None = resume
        first = resume is None
        for out in proc.stream((*self.argv, *tail), stop, poll_s=self.poll_s):
            entry = journal_entry(out)
            if entry is None:
                yield Line(out, cursor)
                continue
            text, cursor = entry
            yield Line(None if first else text, cursor)
            first = False


def journal_entry(out: str) -> tuple[str, JournalCursor] | None:
    """(MESSAGE, __CURSOR) of a ``journalctl -o json`` line; None if it is not one.
    journald gives a MESSAGE that is not UTF-8 as an array of bytes."""
    try:
        doc = json.loads(out)
        cursor = JournalCursor(cursor=doc["__CURSOR"])
    except (ValueError, KeyError, TypeError):
        return None
    message = doc.get("MESSAGE")
    if isinstance(message, list):
        try:
            message = bytes(message).decode(errors="replace")
        except (ValueError, TypeError):
            message = ""
    return (message if isinstance(message, str) else ""), cursor


def follow_forever(
    source: KernelLogSource,
    stop: threading.Event,
    *,
    after: AnyCursor | None = None,
    retry_s: float = 5.0,
) -> Generator[Line]:
    """``source.lines`` from ``after``, restarted after any failure from the last
    position: one log line, a pause, again. The same failure again is logged at debug
    level only."""
    last = ""
    position = after
    while not stop.is_set():
        try:
            with contextlib.closing(source.lines(stop, position)) as lines:
                for line in lines:
                    position = line.cursor if line.cursor is not None else position
                    yield line
        except Exception as exc:
            level = logging.DEBUG if str(exc) == last else logging.WARNING
            last = str(exc)
            log.log(level, "kernel log source failed (%s); retrying in %g s", exc, retry_s)
            stop.wait(retry_s)
        else:
            if not stop.is_set():  # ended by itself: do not spin
                stop.wait(retry_s)
