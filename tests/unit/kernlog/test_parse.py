"""XID and SXid parsing on recorded kernel-log lines (tests/fixtures/xid, see SOURCES.md)."""

from __future__ import annotations

import json
import random
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hpresil.kernlog.identity import GpuIds
from hpresil.kernlog.parse import (
    Deduper,
    LineParser,
    parse_line,
    recovery_action_in,
    strip_prefix,
)
from hpresil.vocab import XidEvent

FIXTURES = Path(__file__).parents[2] / "fixtures" / "xid"
AT = datetime(2025, 2, 23, 16, 24, 18, tzinfo=UTC)
# lines.txt 7 and 8: the "Severity ..." and "Data {...}" lines the driver prints after
# an SXid line; they detail that SXid and are no event of their own.
SXID_DETAIL_LINES = {7, 8}


def _recorded() -> list[tuple[str, dict[str, Any]]]:
    lines = (FIXTURES / "lines.txt").read_text().splitlines()
    expected = [json.loads(x) for x in (FIXTURES / "expected.jsonl").read_text().splitlines()]
    assert len(lines) == len(expected) == 20
    return list(zip(lines, expected, strict=True))


def _forms() -> list[dict[str, Any]]:
    return [json.loads(x) for x in (FIXTURES / "forms.jsonl").read_text().splitlines()]


def _more() -> list[tuple[str, dict[str, Any]]]:
    """recorded.txt / recorded.jsonl: more real lines (45, SXid, MIG, NVLink5, ...)."""
    lines = (FIXTURES / "recorded.txt").read_text().splitlines()
    expected = [json.loads(x) for x in (FIXTURES / "recorded.jsonl").read_text().splitlines()]
    assert len(lines) == len(expected) == 20
    return list(zip(lines, expected, strict=True))


def _fields(event: XidEvent, names: list[str]) -> dict[str, Any]:
    renamed = {"pci": "pci_bus_id"}
    return {n: getattr(event, renamed.get(n, n)) for n in names}


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
    elif exp.get("sxid") and exp["line_no"] not in SXID_DETAIL_LINES:
        assert event is not None and event.kind == "sxid"
        assert (event.xid, event.sxid, event.pci_bus_id) == (exp["sxid"], exp["sxid"], exp["pci"])
    else:
        assert event is None


@pytest.mark.parametrize(("line", "exp"), _more(), ids=lambda v: str(v)[:40])
def test_more_recorded_lines(line: str, exp: dict[str, Any]) -> None:
    event = parse_line(line, AT)
    if exp["event"] is None:
        assert event is None
        return
    assert event is not None and event.raw == line
    assert _fields(event, list(exp["event"])) == exp["event"]


@pytest.mark.parametrize("form", _forms(), ids=lambda f: f["note"][:40])
def test_prefix_and_line_variants(form: dict[str, Any]) -> None:
    event = parse_line(form["line"], AT)
    if form["xid"] is None:
        assert event is None
        return
    assert event is not None
    got = (event.kind, event.xid, event.pci_bus_id, event.pid, event.process)
    kind = form.get("kind", "xid")
    assert got == (kind, form["xid"], form["pci"], form["pid"], form["process"])
    extra = form.get("extra", {})
    assert {name: getattr(event, name) for name in extra} == extra


def test_a_plain_xid_line_leaves_the_optional_fields_empty() -> None:
    event = parse_line("[1.5] NVRM: Xid (PCI:0000:18:00): 48, pid=9, name=a, DBE", AT)
    assert event is not None and event.kind == "xid" and event.sxid is None
    optional = ("gpu_instance", "compute_instance", "switch", "fatal", "recovery_action")
    assert [getattr(event, n) for n in optional] == [None] * len(optional)
    assert (event.root_xid, event.gpu_uuid, event.gpu_serial) == (None, None, None)


def test_fatal_is_only_read_where_the_driver_prints_it() -> None:
    """A message that happens to start with "Fatal" does not make XID 13 fatal."""
    event = parse_line("NVRM: Xid (PCI:0000:18:00): 13, pid=1, name=a, Fatal exception", AT)
    assert event is not None and event.fatal is None


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
    pieces = [
        "NVRM: Xid (PCI:",
        "NVRM: GPU ",
        "NVRM: GPU at PCI:",
        "GPU Board Serial Number: ",
        "nvidia-nvswitch1: SXid (PCI:",
        "0000:18:00",
        " GPU-I:",
        "): ",
        "pid=",
        "[1.0] ",
        "fallen",
        "Fatal, ",
        "caused by previous Xid ",
        "to 0x",
    ]
    parser = LineParser()
    for _ in range(5000):
        line = "".join(
            rng.choice(pieces) if rng.random() < 0.15 else rng.choice(alphabet)
            for _ in range(rng.randint(0, 120))
        )
        event = parse_line(line, AT)  # must not raise
        if event is not None:  # only when the garbage happens to contain a real record
            assert "NVRM: " in line or "SXid (PCI:" in line
        parser.feed(line, AT)  # must not raise either


@pytest.mark.parametrize(
    "line",
    [
        "",
        "\n",
        "NVRM:",
        "NVRM: Xid (PCI:zzzz:18:00): 79",
        "NVRM: Xid (PCI:0000:18:00): x",
        "nvidia-nvswitch: SXid (PCI:0000:06:00.0): 20034, Fatal, Link 1",
        "nvidia-nvswitch1: SXid (PCI:0000:06:00.0): ",
        "nvidia-nvswitch1: SXid (0000:06:00.0): 20034, Fatal, Link 1",
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


def test_deduper_never_drops_an_sxid() -> None:
    line = "nvidia-nvswitch1: SXid (PCI:0000:06:00.0): 20034, Fatal, Link 48 LTSSM Fault Up"
    sxid = parse_line(line, AT)
    assert sxid is not None
    assert all(Deduper().admit(sxid) for _ in range(3))


def test_line_parser_on_the_recorded_stream_yields_each_fault_once() -> None:
    parser = LineParser()
    events = [e for line, _ in _recorded() if (e := parser.feed(line, AT))]
    assert [(e.kind, e.xid, e.pci_bus_id) for e in events] == [
        ("xid", 79, "0000:91:00"),  # its "fallen off the bus" companion is folded in
        ("sxid", 20034, "0000:06:00"),  # its Severity / Data lines are details
        ("xid", 119, "0000:9b:00"),
        ("xid", 119, "0000:9b:00"),
        ("xid", 13, "0000:38:00"),
        ("xid", 43, "0000:38:00"),
        ("xid", 149, "0009:01:00"),
        ("xid", 154, "0009:01:00"),
        ("xid", 154, "0018:01:00"),
        ("xid", 95, "0000:01:00"),
        ("xid", 63, "0000:10:1c"),
    ]
    assert [e.recovery_action for e in events if e.xid == 154] == [4, 1]


def test_line_parser_names_the_gpu_from_the_drivers_identity_lines() -> None:
    """lines.txt 1-3: the UUID and board serial lines the driver prints before the XID."""
    parser = LineParser()
    events = [e for line, _ in _recorded()[:5] if (e := parser.feed(line, AT))]
    uuid = "GPU-b6c3b2be-c55b-d076-fa0e-d464e4c7e08b"
    assert parser.identities == {"0000:91:00": GpuIds(uuid, "1653723052734")}
    assert [(e.xid, e.gpu_uuid, e.gpu_serial) for e in events] == [(79, uuid, "1653723052734")]


def test_line_parser_on_more_recorded_lines() -> None:
    parser = LineParser()
    events = [e for line, _ in _more() if (e := parser.feed(line, AT))]
    assert [(e.kind, e.xid, e.pci_bus_id) for e in events] == [
        ("xid", 45, "0000:dc:00"),
        ("xid", 45, "0000:ed:00"),
        ("xid", 45, "0000:97:00"),
        ("xid", 79, "0000:b3:00"),  # the three-line form, indented continuation lines
        ("sxid", 20034, "0000:05:00"),
        ("sxid", 20034, "0000:07:00"),
        ("sxid", 20034, "0000:00:00"),
        ("sxid", 12028, "0000:05:00"),
        ("xid", 94, "0000:01:00"),
        ("xid", 109, "0000:cb:00"),
        ("xid", 45, "0000:61:00"),
        ("xid", 144, "0000:01:00"),
        ("xid", 145, "0018:01:00"),
        ("xid", 149, "0019:01:00"),
    ]
    assert [e.root_xid for e in events[:3]] == [149, 145, 145]
    assert [e.switch for e in events if e.kind == "sxid"] == [0, 2, 0, 3]
    assert parser.identities == {}


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


# --- lines the kernel log cut short ---------------------------------------------
# The XID number and the PCI id are what matter; the rest of the line may be missing
# (NVIDIA/NVSentinel reads "NVRM: Xid (PCI:0000:01:00): 154 (" as XID 154 on that GPU).


@pytest.mark.parametrize(
    ("line", "xid", "pci", "pid", "message"),
    [
        ("NVRM: Xid (PCI:0000:01:00): 154 (", 154, "0000:01:00", None, ""),
        ("[12.5] NVRM: Xid (PCI:0000:2b:00): 79,", 79, "0000:2b:00", None, ""),
        ("NVRM: Xid (PCI:0000:2b:00): 79, ", 79, "0000:2b:00", None, ""),
        ("NVRM: Xid (PCI:0000:38:00): 13, pid=", 13, "0000:38:00", None, ""),
        ("NVRM: Xid (PCI:0000:38:00): 13, pid='<unkn", 13, "0000:38:00", None, ""),
        ("NVRM: Xid (PCI:0000:38:00): 13, pid=2924364, name=", 13, "0000:38:00", 2924364, ""),
        ("NVRM: Xid (PCI:0000:38:00): 13, pid='<unknown>', name=<unkn", 13, "0000:38:00", None, ""),
        ("NVRM: Xid (PCI:0000:01:00 GPU-I:05): 94, pid=", 94, "0000:01:00", None, ""),
        (
            "NVRM: Xid (PCI:0009:01:00): 154, GPU recovery action chan",
            154,
            "0009:01:00",
            None,
            "GPU recovery action chan",
        ),
    ],
)
def test_a_truncated_xid_line_still_names_the_xid_and_the_gpu(
    line: str, xid: int, pci: str, pid: int | None, message: str
) -> None:
    event = parse_line(line, AT)
    assert event is not None
    assert (event.kind, event.xid, event.pci_bus_id, event.pid) == ("xid", xid, pci, pid)
    assert (event.process, event.message, event.raw) == (None, message, line)
    assert event.recovery_action is None and event.root_xid is None


def test_a_truncated_xid_line_is_an_event_of_the_stream_too() -> None:
    parser = LineParser()
    event = parser.feed("[1843.3] NVRM: Xid (PCI:0000:01:00): 154 (", AT)
    assert event is not None and (event.xid, event.pci_bus_id) == (154, "0000:01:00")


@pytest.mark.parametrize(
    "line",
    [
        "NVRM: Xid (PCI:0000:01:00",  # cut before the number: which XID is unknown
        "NVRM: Xid (PCI:0000:01:00):",
        "NVRM: Xid (PCI:0000:01:00): ",
        "NVRM: Xid (PCI:0000:01:00 GPU-I:0",
        "NVRM: Xid (PCI:0000:01:00): 79abc",  # not a number the driver printed
    ],
)
def test_a_line_cut_before_the_xid_number_gives_nothing(line: str) -> None:
    assert parse_line(line, AT) is None


@pytest.mark.parametrize(
    ("message", "value"),
    [
        ("GPU recovery action changed from 0x0 (None) to 0x4 (Drain and Reset)", 4),
        ("GPU recovery action changed from 0x0 (None) to 0x4 (Drain", 4),
        ("GPU recovery action changed from 0x0 (None) to 0x4", 4),
        ("GPU recovery action changed from 0x0 (None) to 0x", None),  # not 0 ("None")
        ("GPU recovery action changed from 0x0 (None) to ", None),
        ("GPU recovery action changed from 0x0 (None", None),
        ("GPU recovery action changed from 0 to 04", 4),  # int("04", 0) would raise
        ("(", None),
        ("", None),
    ],
)
def test_recovery_action_of_a_truncated_xid_154(message: str, value: int | None) -> None:
    assert recovery_action_in(message) == value
    line = f"NVRM: Xid (PCI:0009:01:00): 154, {message}"
    event = parse_line(line, AT)
    assert event is not None and event.xid == 154 and event.recovery_action == value


# --- one GPU loss, one event, whichever order the driver prints its lines in ------

LOST_THREE_LINES = [
    "[1843.308145] NVRM: The NVIDIA GPU 0000:b3:00.0",
    "[1843.308146] NVRM: (PCI ID: 10de:26b5) installed in this system has",
    "[1843.308147] NVRM: fallen off the bus and is not responding to commands.",
]
XID79_B3 = "[1843.308150] NVRM: Xid (PCI:0000:b3:00): 79, GPU has fallen off the bus."


def test_the_three_line_loss_before_its_xid_79_line_is_one_event_emitted_at_once() -> None:
    parser = LineParser()
    events = [parser.feed(line, AT) for line in [*LOST_THREE_LINES, XID79_B3]]
    assert events[:2] == [None, None] and events[3] is None
    first = events[2]  # not held back waiting for the Xid line
    assert first is not None and (first.kind, first.xid, first.pci_bus_id) == (
        "xid",
        79,
        "0000:b3:00",
    )


def test_the_xid_79_line_after_its_companion_is_dropped_whatever_the_companion_form() -> None:
    for companion in (
        "NVRM: GPU at 0000:b3:00.0 has fallen off the bus.",
        "NVRM: GPU 0000:b3:00.0: GPU has fallen off the bus.",
    ):
        parser = LineParser()
        events = [e for line in (companion, XID79_B3) if (e := parser.feed(line, AT))]
        assert [(e.xid, e.pci_bus_id) for e in events] == [(79, "0000:b3:00")]


def test_deduper_drops_an_explicit_79_that_follows_its_companion_on_the_same_gpu() -> None:
    lost = parse_line("NVRM: GPU 0000:b3:00.0: GPU has fallen off the bus.", AT)
    xid79 = parse_line(XID79_B3, AT + timedelta(seconds=1))
    other_gpu = parse_line(XID79_B3.replace("b3:00", "b4:00"), AT + timedelta(seconds=1))
    assert lost is not None and xid79 is not None and other_gpu is not None
    dedupe = Deduper(window_s=300)
    assert [dedupe.admit(e) for e in (lost, xid79, other_gpu)] == [True, False, True]


def test_deduper_admits_an_explicit_79_long_after_a_companion() -> None:
    lost = parse_line("NVRM: GPU 0000:b3:00.0: GPU has fallen off the bus.", AT)
    xid79 = parse_line(XID79_B3, AT + timedelta(seconds=301))
    assert lost is not None and xid79 is not None
    dedupe = Deduper(window_s=300)
    assert [dedupe.admit(e) for e in (lost, xid79)] == [True, True]


def test_a_gpu_lost_again_within_the_window_is_still_a_second_fault() -> None:
    """Companion, Xid 79 (one fault); then, after a repair, companion, Xid 79 again.

    The first Xid line is folded into the companion's event; the second loss is
    reported by its Xid line: an explicit 79 after an explicit 79 is a new fault.
    """
    parser = LineParser()
    lines = [*LOST_THREE_LINES, XID79_B3, *LOST_THREE_LINES, XID79_B3]
    times = [AT] * 4 + [AT + timedelta(seconds=60)] * 4
    events = [e for line, t in zip(lines, times, strict=True) if (e := parser.feed(line, t))]
    assert [(e.xid, e.pci_bus_id, e.seen_at) for e in events] == [
        (79, "0000:b3:00", AT),
        (79, "0000:b3:00", AT + timedelta(seconds=60)),
    ]
    assert events[1].raw == XID79_B3
