"""Kernel-log sources: file following (appends, missing file, truncation, rotation),
kmsg record parsing, the journal child process, and retry after failure."""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpresil.config import KernelLogConfig
from hpresil.kernlog.cursor import Line
from hpresil.kernlog.sources import (
    FileSource,
    JournalSource,
    KernelLogSource,
    KmsgSource,
    follow_forever,
    kmsg_message,
    open_source,
)
from tests.kernlogtext import texts


class Follower:
    """Runs a source on a thread from its end and collects the text of its lines."""

    def __init__(self, *, source: KernelLogSource) -> None:
        self.stop = threading.Event()
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        it = texts(source, self.stop)
        self.thread = threading.Thread(target=self._run, args=(it,), daemon=True)
        self.thread.start()

    def _run(self, it: Iterator[str]) -> None:
        for line in it:
            self.lines.put(line)

    def take(self, n: int, timeout: float = 3.0) -> list[str]:
        return [self.lines.get(timeout=timeout) for _ in range(n)]

    def nothing(self, wait: float = 0.3) -> bool:
        time.sleep(wait)
        return self.lines.empty()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=3)
        assert not self.thread.is_alive()


def _append(path: Path, text: str) -> None:
    with path.open("a") as fh:
        fh.write(text)


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    return tmp_path / "kmsg" / "node1.log"


def test_file_source_follows_from_the_end(log_file: Path) -> None:
    log_file.parent.mkdir()
    log_file.write_text("old line\n")
    f = Follower(source=FileSource(log_file, poll_s=0.02))
    try:
        time.sleep(0.1)
        _append(log_file, "new 1\nnew 2\n")
        assert f.take(2) == ["new 1", "new 2"]
    finally:
        f.close()


def test_file_source_waits_for_the_file_and_reads_it_from_its_start(log_file: Path) -> None:
    f = Follower(source=FileSource(log_file, poll_s=0.02))
    try:
        time.sleep(0.1)
        log_file.parent.mkdir()
        log_file.write_text("first\n")
        assert f.take(1) == ["first"]
    finally:
        f.close()


def test_file_source_holds_a_partial_line_until_it_ends(log_file: Path) -> None:
    log_file.parent.mkdir()
    log_file.write_text("")
    f = Follower(source=FileSource(log_file, poll_s=0.02))
    try:
        time.sleep(0.1)
        _append(log_file, "half")
        assert f.nothing()
        _append(log_file, " done\n")
        assert f.take(1) == ["half done"]
    finally:
        f.close()


def test_file_source_survives_truncation(log_file: Path) -> None:
    log_file.parent.mkdir()
    log_file.write_text("x" * 100 + "\n")
    f = Follower(source=FileSource(log_file, poll_s=0.02))
    try:
        time.sleep(0.1)
        _append(log_file, "before\n")
        assert f.take(1) == ["before"]
        log_file.write_text("")  # truncate
        time.sleep(0.1)
        _append(log_file, "after\n")
        assert f.take(1) == ["after"]
    finally:
        f.close()


def test_file_source_survives_rotation(log_file: Path) -> None:
    log_file.parent.mkdir()
    log_file.write_text("")
    f = Follower(source=FileSource(log_file, poll_s=0.02))
    try:
        time.sleep(0.1)
        _append(log_file, "one\n")
        assert f.take(1) == ["one"]
        os.rename(log_file, log_file.with_suffix(".log.1"))
        _append(log_file.with_suffix(".log.1"), "late in the old file\n")
        time.sleep(0.1)
        log_file.write_text("in the new file\n")
        assert f.take(2) == ["late in the old file", "in the new file"]
    finally:
        f.close()


def test_open_source_expands_node_in_the_path(tmp_path: Path) -> None:
    cfg = KernelLogConfig(source="file", path=str(tmp_path / "{node}.log"), poll_s=0.5)
    source = open_source(cfg, "node7")
    assert isinstance(source, FileSource)
    assert source.path == tmp_path / "node7.log" and source.poll_s == 0.5
    assert isinstance(open_source(KernelLogConfig(source="kmsg"), "n"), KmsgSource)
    assert isinstance(open_source(KernelLogConfig(source="journal"), "n"), JournalSource)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            "6,3998,261229012,-;nvidia-nvswitch3: open (major=510)\n",
            "nvidia-nvswitch3: open (major=510)",
        ),
        (
            "3,5,6,c;NVRM: Xid (PCI:0000:18:00): 79, x\n SUBSYSTEM=pci\n DEVICE=+pci:0000:18:00\n",
            "NVRM: Xid (PCI:0000:18:00): 79, x",
        ),
    ],
)
def test_kmsg_record_message(record: str, message: str) -> None:
    assert kmsg_message(record) == message


def test_kmsg_source_reads_only_new_records_when_it_is_readable() -> None:
    if not os.access("/dev/kmsg", os.R_OK):
        pytest.skip("/dev/kmsg not readable here")
    stop = threading.Event()
    stop.set()
    assert list(texts(KmsgSource(), stop)) == []  # opens, seeks to the end, stops


def test_journal_source_streams_a_child_and_kills_it_on_stop(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = f"echo $$ > {pidfile}; echo one; echo two; exec sleep 60"
    f = Follower(source=JournalSource(["sh", "-c", script], poll_s=0.05))
    assert f.take(2) == ["one", "two"]
    f.close()
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the follower child survived stop")


class _Flaky:
    def __init__(self, failures: int = 1) -> None:
        self.calls = 0
        self.failures = failures

    def lines(self, stop: threading.Event, after: object) -> Iterator[Line]:
        self.calls += 1
        if self.calls <= self.failures:
            raise PermissionError("/dev/kmsg: permission denied")
        yield Line("after the retry", None)
        stop.wait()


def test_failing_source_is_logged_once_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    source = _Flaky(failures=3)
    stop = threading.Event()
    out: queue.SimpleQueue[str] = queue.SimpleQueue()

    def run() -> None:
        for line in follow_forever(source, stop, retry_s=0.05):
            out.put(line.text or "")

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert out.get(timeout=3) == "after the retry"
    stop.set()
    t.join(timeout=3)
    assert source.calls == 4
    failures = [
        r
        for r in caplog.records
        if "kernel log source failed" in r.getMessage() and r.levelname == "WARNING"
    ]
    assert len(failures) == 1 and "permission denied" in failures[0].getMessage()


def test_journal_command_that_exits_is_an_error_for_the_retry_loop() -> None:
    stop = threading.Event()
    source = JournalSource([sys.executable, "-c", "print('bye')"], poll_s=0.05)
    it = texts(source, stop)
    assert next(it) == "bye"
    with pytest.raises(Exception, match="exited 0"):
        next(it)
