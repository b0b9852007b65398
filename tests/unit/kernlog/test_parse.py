"""XID parsing on recorded kernel-log lines (tests/fixtures/xid, see SOURCES.md)."""

from __future__ import annotations

import json
import random
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hpresil.kernlog.parse import Deduper, LineParser, parse_line, strip_prefix

FIXTURES = Path(__file__).parents[2] / "fixtures" / "xid"
AT = datetime(2025, 2, 23, 16, 24, 18, tzinfo=UTC)


def _recorded() -> list[tuple[str, dict[str, Any]]]:
    lines = (FIXTURES / "lines.txt").read_text().splitlines()
    expected = [json.loads(x) for x in (FIXTURES / "expected.jsonl").read_text().splitlines()]
    assert len(lines) == len(expected) == 20
    return list(zip(lines, expected, strict=True))


def _forms() -> list[dict[str, Any]]:
    return [json.loads(x) for x in (FIXTURES / "forms.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(("line", "exp"), _recorded(), ids=lambda v: str(v)[:40])
def test_recorded_line_parses_as_expected(line: str, exp: dict[str, Any]) -> None:
    event = parse_line(line, AT)
    if exp["is_xid"]:
        assert event is not None
        assert (event.xid, event.pci_bus_id, event.pid) == (exp["xid"], exp["pci"], exp["pid"])
        assert event.raw == line and event.seen_at == AT
    elif exp["gpu_lost"]:  # fallen off the bus without an XID number: treated as 79
        assert event is not None
        assert (event.xid, event.pci_bus_id, event.pid) == (79, exp["pci"], None)
    else:
        assert event is None


@pytest.mark.parametrize("form", _forms(), ids=lambda f: f["note"][:40])
def test_prefix_and_line_variants(form: dict[str, Any]) -> None:
    event = parse_line(form["line"], AT)
    if form["xid"] is None:
        assert event is None
        return
    assert event is not None
    got = (event.xid, event.pci_bus_id, event.pid, event.process)
    assert got == (form["xid"], form["pci"], form["pid"], form["process"])


def test_fields_of_a_full_line() -> None:
    line = (
        "kern  :warn  : 2025-01-21T04:41:44,287197+00:00 NVRM: Xid (PCI:0000:38:00): 43, "
        "pid=2924364, name=pt_main_thread, Ch 00000008"
    )
    event = parse_line(line, AT)
    assert event is not None
    assert event.process == "pt_main_thread" and event.message == "Ch 00000008"


def test_unknown_pid_and_name_become_none() -> None:
    line = "NVRM: Xid (PCI:0000:91:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off."
    event = parse_line(line, AT)
    assert event is not None and event.pid is None and event.process is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[12.5] NVRM: hello", "NVRM: hello"),
        ("<4>[ 1126.635824] NVRM: x", "NVRM: x"),
        ("[Sun Feb 23 16:24:18 2025] NVRM: x", "NVRM: x"),
        ("kern  :warn  : 2025-01-21T04:41:44,283302+00:00 NVRM: x", "NVRM: x"),
        ("May 18 19:02:39 host kernel: NVRM: x", "NVRM: x"),
        ("May 18 19:02:39.123456 host kernel: NVRM: x", "NVRM: x"),
        ("6,1234,5678901,-;NVRM: x", "NVRM: x"),
    ],
)
def test_strip_prefix(line: str, message: str) -> None:
    assert strip_prefix(line) == message


def test_garbage_never_raises_and_gives_nothing() -> None:
    rng = random.Random(20250223)
    alphabet = string.printable + "\x00\ufffd\u00e9[]():;,<>'"
    pieces = ["NVRM: Xid (PCI:", "NVRM: GPU ", "0000:18:00", "): ", "pid=", "[1.0] ", "fallen"]
    for _ in range(5000):
        line = "".join(
            rng.choice(pieces) if rng.random() < 0.15 else rng.choice(alphabet)
            for _ in range(rng.randint(0, 120))
        )
        event = parse_line(line, AT)  # must not raise
        if event is not None:  # only when the garbage happens to contain a real record
            assert "NVRM: " in line


@pytest.mark.parametrize(
    "line",
    [
        "",
        "\n",
        "NVRM:",
        "NVRM: Xid (PCI:zzzz:18:00): 79",
        "NVRM: Xid (PCI:0000:18:00): x",
        "\x00" * 50,
    ],
)
def test_near_misses_give_nothing(line: str) -> None:
    assert parse_line(line, AT) is None


def test_deduper_drops_the_companion_line_of_a_recent_79_on_the_same_gpu() -> None:
    xid79 = parse_line(_recorded()[2][0], AT)
    lost = parse_line(_recorded()[3][0], AT + timedelta(seconds=1))
    later = parse_line(_recorded()[3][0], AT + timedelta(seconds=301))
    assert xid79 is not None and lost is not None and later is not None
    dedupe = Deduper(window_s=300)
    assert [dedupe.admit(e) for e in (xid79, lost, later)] == [True, False, True]


def test_deduper_admits_a_second_explicit_79_within_the_window() -> None:
    """A GPU lost again soon after a repair is a new fault, not a duplicate."""
    line = "NVRM: Xid (PCI:0000:18:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off"
    first, again = parse_line(line, AT), parse_line(line, AT + timedelta(seconds=30))
    assert first is not None and again is not None
    dedupe = Deduper(window_s=300)
    assert [dedupe.admit(e) for e in (first, again)] == [True, True]


def test_deduper_keeps_other_gpus_and_other_xids() -> None:
    dedupe = Deduper()
    a = parse_line("NVRM: Xid (PCI:0000:18:00): 79, GPU has fallen off the bus.", AT)
    b = parse_line("NVRM: Xid (PCI:0000:2a:00): 79, GPU has fallen off the bus.", AT)
    c = parse_line("NVRM: Xid (PCI:0000:18:00): 119, pid=1, name=x, Timeout", AT)
    assert a and b and c
    assert [dedupe.admit(e) for e in (a, b, c, c)] == [True, True, True, True]


def test_line_parser_on_the_recorded_stream_yields_each_fault_once() -> None:
    parser = LineParser()
    events = [e for line, _ in _recorded() if (e := parser.feed(line, AT))]
    assert [(e.xid, e.pci_bus_id) for e in events] == [
        (79, "0000:91:00"),
        (119, "0000:9b:00"),
        (119, "0000:9b:00"),
        (13, "0000:38:00"),
        (43, "0000:38:00"),
        (149, "0009:01:00"),
        (154, "0009:01:00"),
        (154, "0018:01:00"),
        (95, "0000:01:00"),
        (63, "0000:10:1c"),
    ]


def test_line_parser_joins_the_three_line_gpu_lost_form() -> None:
    parser = LineParser()
    lines = [
        "[5.1] NVRM: The NVIDIA GPU 0000:b3:00.0",
        "[5.1] NVRM: (PCI ID: 10de:26b5) installed in this system has",
        "[5.1] NVRM: fallen off the bus and is not responding to commands.",
    ]
    events = [parser.feed(line, AT) for line in lines]
    assert events[:2] == [None, None]
    assert events[2] is not None
    assert (events[2].xid, events[2].pci_bus_id) == (79, "0000:b3:00")
    assert events[2].raw == lines[0]
