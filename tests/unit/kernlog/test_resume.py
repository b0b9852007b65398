"""Kernel-log sources resume after a cursor: what was written while nothing read is
read on the next start, what was handed on before is not handed on again (file,
kmsg records, journal), and the cursor on disk and when it may move."""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpresil.kernlog.cursor import (
    CursorFile,
    CursorKeeper,
    FileCursor,
    JournalCursor,
    KmsgCursor,
    Line,
)
from hpresil.kernlog.sources import (
    AnyCursor,
    FileSource,
    JournalSource,
    KernelLogSource,
    KmsgSource,
    follow_forever,
)
from tests.diskfull import small_disk


class Reader:
    """A source's lines(stop, after) on a thread, collected."""

    def __init__(self, source: KernelLogSource, after: AnyCursor | None) -> None:
        self.stop = threading.Event()
        self.lines: queue.SimpleQueue[Line] = queue.SimpleQueue()
        self.last: AnyCursor | None = after
        it = follow_forever(source, self.stop, after=after, retry_s=0.05)
        self.thread = threading.Thread(target=self._run, args=(it,), daemon=True)
        self.thread.start()

    def _run(self, it: Iterator[Line]) -> None:
        for line in it:
            self.lines.put(line)

    def take(self, n: int, timeout: float = 3.0) -> list[str]:
        """The next ``n`` texts (positions without text are skipped)."""
        texts: list[str] = []
        while len(texts) < n:
            line = self.lines.get(timeout=timeout)
            self.last = line.cursor or self.last
            if line.text is not None:
                texts.append(line.text)
        return texts

    def settle(self, wait: float = 0.3) -> list[str]:
        """Whatever texts come within ``wait``."""
        time.sleep(wait)
        texts: list[str] = []
        while not self.lines.empty():
            line = self.lines.get()
            self.last = line.cursor or self.last
            if line.text is not None:
                texts.append(line.text)
        return texts

    def close(self) -> AnyCursor | None:
        self.stop.set()
        self.thread.join(timeout=3)
        assert not self.thread.is_alive()
        return self.last


def _append(path: Path, text: str) -> None:
    with path.open("a") as fh:
        fh.write(text)


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "node1.log"
    path.write_text("old 1\nold 2\n")
    return path


# --- file ---
def test_file_lines_written_while_nothing_reads_are_read_from_the_cursor(log_file: Path) -> None:
    source = FileSource(log_file, poll_s=0.02)
    first = Reader(source, None)
    assert first.settle() == []  # no cursor: from the end, as before
    _append(log_file, "seen 1\n")
    assert first.take(1) == ["seen 1"]
    cursor = first.close()
    _append(log_file, "while down 1\nwhile down 2\n")
    second = Reader(source, cursor)
    try:
        assert second.take(2) == ["while down 1", "while down 2"]
        assert second.settle() == []
    finally:
        second.close()


def test_file_line_handed_on_before_a_restart_is_not_read_again(log_file: Path) -> None:
    source = FileSource(log_file, poll_s=0.02)
    first = Reader(source, None)
    first.settle()
    _append(log_file, "NVRM: Xid (PCI:0000:18:00): 79, GPU has fallen off the bus.\n")
    first.take(1)
    cursor = first.close()
    second = Reader(source, cursor)
    try:
        assert second.settle() == []
        _append(log_file, "after\n")
        assert second.take(1) == ["after"]
    finally:
        second.close()


def test_a_log_file_that_appears_while_the_agent_is_down_is_read_from_its_start(
    tmp_path: Path,
) -> None:
    """No file when the first agent ran (a node's first boot with hpresil): it still
    saves a position, so the XID written while it was down is read on restart."""
    path = tmp_path / "node4.log"
    source = FileSource(path, poll_s=0.02)
    first = Reader(source, None)
    assert first.settle() == []
    cursor = first.close()
    assert cursor is not None  # without one, the restart would start at the new end
    _append(path, "NVRM: Xid (PCI:0000:3a:00): 79, GPU has fallen off the bus.\n")
    second = Reader(source, cursor)
    try:
        assert second.take(1) == ["NVRM: Xid (PCI:0000:3a:00): 79, GPU has fallen off the bus."]
    finally:
        second.close()


def test_no_cursor_yields_the_end_as_a_position_first(log_file: Path) -> None:
    stop = threading.Event()
    it = FileSource(log_file, poll_s=0.02).lines(stop, None)
    first = next(it)
    stop.set()
    it.close()
    st = log_file.stat()
    assert first.text is None and isinstance(first.cursor, FileCursor)
    assert (first.cursor.dev, first.cursor.ino) == (st.st_dev, st.st_ino)
    assert first.cursor.offset == st.st_size


def test_file_rotated_while_down_rest_of_old_file_then_new_file(log_file: Path) -> None:
    source = FileSource(log_file, poll_s=0.02)
    first = Reader(source, None)
    first.settle()
    _append(log_file, "seen\n")
    first.take(1)
    cursor = first.close()
    _append(log_file, "late in the old file\n")
    os.rename(log_file, log_file.with_name("node1.log.1"))
    log_file.write_text("in the new file\n")
    second = Reader(source, cursor)
    try:
        assert second.take(2) == ["late in the old file", "in the new file"]
        assert second.settle() == []
    finally:
        second.close()


def test_file_rotated_away_while_down_new_file_from_its_start(log_file: Path) -> None:
    source = FileSource(log_file, poll_s=0.02)
    first = Reader(source, None)
    first.settle()
    cursor = first.close()
    log_file.unlink()
    log_file.write_text("new 1\nnew 2\n")
    second = Reader(source, cursor)
    try:
        assert second.take(2) == ["new 1", "new 2"]
    finally:
        second.close()


def test_file_truncated_while_down_read_from_its_start(log_file: Path) -> None:
    source = FileSource(log_file, poll_s=0.02)
    first = Reader(source, None)
    first.settle()
    _append(log_file, "x" * 200 + "\n")
    first.take(1)
    cursor = first.close()
    with log_file.open("w") as fh:  # same inode, shorter than the cursor's offset
        fh.write("after truncation\n")
    second = Reader(source, cursor)
    try:
        assert second.take(1) == ["after truncation"]
    finally:
        second.close()


# --- kmsg records (a regular file stands in for /dev/kmsg) ---
@pytest.fixture
def kmsg(tmp_path: Path) -> tuple[Path, Path]:
    records = tmp_path / "kmsg"
    records.write_text(
        "6,1,100,-;Linux version 6.8\n"
        "4,2,200,-;NVRM: Xid (PCI:0000:18:00): 79, GPU has fallen off the bus.\n"
        " SUBSYSTEM=pci\n"
        " DEVICE=+pci:0000:18:00\n"
    )
    boot = tmp_path / "boot_id"
    boot.write_text("boot-a\n")
    return records, boot


def test_kmsg_resumes_after_the_cursor_sequence_number(kmsg: tuple[Path, Path]) -> None:
    records, boot = kmsg
    _append(records, "4,3,300,-;NVRM: Xid (PCI:0000:3b:00): 48, while down\n")
    source = KmsgSource(records, poll_s=0.02, boot_id_path=boot)
    reader = Reader(source, KmsgCursor(boot_id="boot-a", seq=2))
    try:
        assert reader.take(1) == ["NVRM: Xid (PCI:0000:3b:00): 48, while down"]
        assert reader.settle() == []
        assert reader.last == KmsgCursor(boot_id="boot-a", seq=3)
    finally:
        reader.close()


def test_kmsg_after_a_reboot_reads_all_records(kmsg: tuple[Path, Path]) -> None:
    records, boot = kmsg
    source = KmsgSource(records, poll_s=0.02, boot_id_path=boot)
    reader = Reader(source, KmsgCursor(boot_id="boot-before", seq=50))
    try:
        assert reader.take(2) == [
            "Linux version 6.8",
            "NVRM: Xid (PCI:0000:18:00): 79, GPU has fallen off the bus.",
        ]
    finally:
        reader.close()


def test_kmsg_without_cursor_starts_at_the_end_and_names_it(kmsg: tuple[Path, Path]) -> None:
    records, boot = kmsg
    source = KmsgSource(records, poll_s=0.02, boot_id_path=boot)
    reader = Reader(source, None)
    try:
        assert reader.settle() == []
        assert reader.last == KmsgCursor(boot_id="boot-a", seq=2)
        _append(records, "3,3,300,-;new\n")
        assert reader.take(1) == ["new"]
    finally:
        cursor = reader.close()
    assert cursor == KmsgCursor(boot_id="boot-a", seq=3)


# --- journal (a script stands in for journalctl) ---
def _journal(tmp_path: Path) -> JournalSource:
    args = tmp_path / "args"
    script = (
        "import json, sys\n"
        f"open({str(args)!r}, 'w').write(' '.join(sys.argv[1:]))\n"
        "print(json.dumps({'__CURSOR': 's=1;i=1', 'MESSAGE': 'old'}))\n"
        "print(json.dumps({'__CURSOR': 's=1;i=2', 'MESSAGE': list(b'new \\xff')}))\n"
        "sys.stdout.flush()\n"
        "import time; time.sleep(60)\n"
    )
    return JournalSource([sys.executable, "-c", script, "-k", "-f"], poll_s=0.05)


def test_journal_resumes_after_its_cursor(tmp_path: Path) -> None:
    reader = Reader(_journal(tmp_path), JournalCursor(cursor="s=1;i=0"))
    try:
        assert reader.take(2) == ["old", "new \ufffd"]
        assert reader.last == JournalCursor(cursor="s=1;i=2")
    finally:
        reader.close()
    assert (tmp_path / "args").read_text() == "-k -f --after-cursor=s=1;i=0"


def test_journal_without_cursor_takes_the_newest_entry_as_a_position(tmp_path: Path) -> None:
    reader = Reader(_journal(tmp_path), None)
    try:
        assert reader.take(1) == ["new \ufffd"]  # "old", shown by -n 1, is not judged
    finally:
        reader.close()
    assert (tmp_path / "args").read_text() == "-k -f -n 1"


# --- the cursor file and when the cursor moves ---
def test_cursor_file_round_trip_and_age(tmp_path: Path) -> None:
    now = [1000.0]
    store = CursorFile(tmp_path / "c", max_age_s=60, clock=lambda: now[0])
    assert store.load() is None
    store.save(KmsgCursor(boot_id="b", seq=7))
    now[0] += 59
    assert store.load() == KmsgCursor(boot_id="b", seq=7)
    now[0] += 2
    assert store.load() is None  # down longer than resume_max_s: start at the end


@pytest.mark.parametrize("text", ["", "{", '{"saved_at": 1, "cursor": {"kind": "tape"}}'])
def test_unreadable_cursor_file_is_no_cursor(tmp_path: Path, text: str) -> None:
    (tmp_path / "c").write_text(text)
    assert CursorFile(tmp_path / "c", max_age_s=60, clock=lambda: 1.0).load() is None


def _file_at(offset: int) -> FileCursor:
    return FileCursor(dev=1, ino=2, offset=offset)


def _saved(path: Path) -> object:
    return json.loads(path.read_text())["cursor"]["offset"]


def test_cursor_does_not_pass_a_line_whose_event_is_not_spooled(tmp_path: Path) -> None:
    store = CursorFile(tmp_path / "c", max_age_s=60)
    keeper = CursorKeeper(store, _file_at(10))
    keeper.read(Line("plain", _file_at(20)))
    keeper.read(Line("NVRM: Xid ...: 79", _file_at(30)), event=True)
    keeper.read(Line("plain after", _file_at(40)))
    keeper.commit()
    assert _saved(store.path) == 20  # just before the XID line: it is read again
    keeper.spooled(1)
    keeper.commit()
    assert _saved(store.path) == 40


def test_unchanged_cursor_is_not_rewritten_until_refresh(tmp_path: Path) -> None:
    now = [0.0]
    store = CursorFile(tmp_path / "c", max_age_s=60)
    keeper = CursorKeeper(store, _file_at(10), refresh_s=100, clock=lambda: now[0])
    keeper.commit()
    first = store.path.stat().st_mtime_ns
    store.path.unlink()
    now[0] = 50
    keeper.commit()
    assert not store.path.exists()
    now[0] = 101
    keeper.commit()
    assert store.path.exists() and first


def test_a_cursor_that_cannot_be_saved_is_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hpresil.kernlog.cursor")
    with small_disk(tmp_path / "disk", size_kib=64) as disk:
        store = CursorFile(disk.path / "c", max_age_s=60)
        keeper = CursorKeeper(store, _file_at(10))
        disk.fill()
        for offset in (20, 30, 40):  # a tick each, the disk full all along
            keeper.read(Line("plain", _file_at(offset)))
            keeper.commit()
        disk.free()
        keeper.read(Line("plain", _file_at(50)))
        keeper.commit()
        assert _saved(store.path) == 50
    told = [r.getMessage() for r in caplog.records if "kernel-log cursor" in r.getMessage()]
    assert len(told) == 2 and "cannot save" in told[0] and "saved again" in told[1]
