"""Injected XID lines: the driver's exact format, read back by the parser."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hpresil.config import KernelLogConfig
from hpresil.errors import UsageError
from hpresil.kernlog.inject import write_line, xid_line
from hpresil.kernlog.parse import parse_line

AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_xid_79_line_is_exactly_the_drivers() -> None:
    assert xid_line(79, "0000:18:00") == (
        "NVRM: Xid (PCI:0000:18:00): 79, pid='<unknown>', name=<unknown>, "
        "GPU has fallen off the bus."
    )


def test_pid_process_and_message_are_used() -> None:
    line = xid_line(13, "00000000:2A:00.0", pid=4242, process="python3", message="boom")
    assert line == "NVRM: Xid (PCI:0000:2a:00): 13, pid=4242, name=python3, boom"


@pytest.mark.parametrize("xid", [13, 31, 43, 48, 63, 64, 74, 79, 92, 94, 95, 119, 154, 999])
def test_every_injected_line_parses_back(xid: int) -> None:
    event = parse_line(xid_line(xid, "0000:db:00", pid=7), AT)
    assert event is not None
    assert (event.xid, event.pci_bus_id, event.pid) == (xid, "0000:db:00", 7)


def test_bad_pci_id_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not a PCI bus id"):
        xid_line(79, "gpu0")


def test_file_write_appends_a_dmesg_style_line_the_parser_reads(tmp_path: Path) -> None:
    cfg = KernelLogConfig(source="file", path=str(tmp_path / "kmsg" / "{node}.log"))
    write_line(cfg, "node3", xid_line(48, "0000:2a:00"))
    write_line(cfg, "node3", xid_line(79, "0000:18:00"))
    lines = (tmp_path / "kmsg" / "node3.log").read_text().splitlines()
    assert len(lines) == 2
    assert re.match(r"^\[\s*\d+\.\d{6}\] NVRM: Xid \(PCI:0000:2a:00\): 48, ", lines[0])
    events = [parse_line(line, AT) for line in lines]
    assert [(e.xid, e.pci_bus_id) for e in events if e] == [(48, "0000:2a:00"), (79, "0000:18:00")]


def test_a_line_with_a_newline_is_refused(tmp_path: Path) -> None:
    cfg = KernelLogConfig(source="file", path=str(tmp_path / "k.log"))
    with pytest.raises(UsageError):
        write_line(cfg, "n", "a\nb")
