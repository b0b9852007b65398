"""``hpresil xid parse`` on the recorded kernel logs of tests/fixtures/xid."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner, Result

from hpresil.cli.xid import COMMANDS, xid
from hpresil.config.xid import XidOverride, XidPolicyConfig
from hpresil.vocab import Action

FIXTURES = Path(__file__).parents[2] / "fixtures" / "xid"
LINES = FIXTURES / "lines.txt"
MORE = FIXTURES / "recorded.txt"


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # rich tables: one line per row


def _run(*args: str, stdin: str | bytes | None = None, obj: object = None) -> Result:
    return CliRunner().invoke(xid, ["parse", *args], input=stdin, obj=obj)


def _json(*args: str, **kw: Any) -> list[dict[str, Any]]:
    result = _run(*args, "--json", **kw)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert isinstance(rows, list)
    return rows


def test_the_group_is_exported_for_the_root_command() -> None:
    assert [xid] == COMMANDS and xid.name == "xid" and "parse" in xid.commands
    assert (xid.help or "").strip() and (xid.commands["parse"].help or "").strip()


def test_json_lists_each_fault_of_the_recorded_log_once() -> None:
    rows = _json(str(LINES))
    got = [(r["kind"], r["xid"], r["sxid"], r["pci_bus_id"], r["action"]) for r in rows]
    assert got == [
        ("xid", 79, None, "0000:91:00", "reboot"),
        ("sxid", None, 20034, "0000:06:00", "drain"),
        ("xid", 119, None, "0000:9b:00", "reset_gpu"),
        ("xid", 119, None, "0000:9b:00", "reset_gpu"),
        ("xid", 13, None, "0000:38:00", "none"),
        ("xid", 43, None, "0000:38:00", "none"),
        ("xid", 149, None, "0009:01:00", "reset_gpu"),
        ("xid", 154, None, "0009:01:00", "reset_gpu"),
        ("xid", 154, None, "0018:01:00", "reset_gpu"),
        ("xid", 95, None, "0000:01:00", "reboot"),
        ("xid", 63, None, "0000:10:1c", "watch"),
    ]
    first = rows[0]
    assert first["severity"] == "fail" and first["category"] == "gpu_lost_pcie"
    assert (first["pid"], first["process"]) == (None, None)
    assert first["gpu_uuid"] == "GPU-b6c3b2be-c55b-d076-fa0e-d464e4c7e08b"
    assert first["gpu_serial"] == "1653723052734"
    assert rows[2]["pid"] == 2024380 and rows[2]["process"] == "nvidia-smi"
    assert rows[1]["switch"] == 1 and rows[1]["fatal"] is True
    assert [r["recovery_action"] for r in rows if r["xid"] == 154] == [4, 1]
    assert rows[7]["category"] == "nvlink_nvswitch"  # 154 follows the 149 before it


def test_json_carries_what_the_line_adds() -> None:
    rows = _json(str(MORE))
    by_line = {r["raw"]: r for r in rows}
    caused = by_line[MORE.read_text().splitlines()[0]]
    assert (caused["xid"], caused["root_xid"], caused["action"], caused["category"]) == (
        45,
        149,
        "none",
        "nvlink_nvswitch",
    )
    mig = next(r for r in rows if r["xid"] == 94)
    assert (mig["gpu_instance"], mig["compute_instance"]) == (5, None)
    nonfatal = next(r for r in rows if r["sxid"] == 12028)
    assert (nonfatal["fatal"], nonfatal["severity"], nonfatal["action"]) == (
        False,
        "warn",
        "watch",
    )
    lost = next(r for r in rows if r["xid"] == 79)
    assert lost["pci_bus_id"] == "0000:b3:00"  # the three-line form, joined


def test_the_table_shows_one_row_per_fault() -> None:
    result = _run(str(LINES))
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert len(rows) == 11
    cells = [c.strip() for c in rows[0].strip("│").split("│")]
    assert cells == [
        "79",
        "0000:91:00",
        "-",
        "-",
        "fail",
        "reboot",
        "gpu_lost_pcie",
        "GPU has fallen off the bus.",
    ]
    sxid = [c.strip() for c in rows[1].strip("│").split("│")]
    assert sxid[:2] == ["SXid 20034 (nvswitch1)", "0000:06:00"]
    assert sxid[4:7] == ["fail", "drain", "nvlink_nvswitch"]
    (header,) = [line for line in result.output.splitlines() if line.startswith("┃")]
    assert [c.strip() for c in header.strip("┃").split("┃")] == [
        "xid",
        "pci",
        "pid",
        "process",
        "severity",
        "action",
        "category",
        "message",
    ]


@pytest.mark.parametrize("args", [("-",), ()])
def test_standard_input(args: tuple[str, ...]) -> None:
    line = "May 18 19:02:39 gpu7 kernel: NVRM: Xid (PCI:0000:18:00): 48, pid=7, name=a, DBE\n"
    rows = _json(*args, stdin=line)
    assert [(r["xid"], r["pci_bus_id"], r["pid"], r["action"]) for r in rows] == [
        (48, "0000:18:00", 7, "reset_gpu")
    ]


def test_a_log_without_faults() -> None:
    result = _run("-", stdin="[1.0] usb 1-1: new device\n")
    assert (result.exit_code, result.output) == (0, "no XID, SXid or GPU-lost line found\n")
    assert _json("-", stdin="") == []


def test_bytes_that_are_not_text_do_not_stop_it() -> None:
    data = b"\xff\xfe\x00garbage\n[1.0] NVRM: Xid (PCI:0000:18:00): 79, GPU has fallen off\n"
    assert [r["xid"] for r in _json("-", stdin=data)] == [79]


@pytest.mark.parametrize("which", ["missing", "directory"])
def test_a_file_that_cannot_be_read_is_one_line(tmp_path: Path, which: str) -> None:
    path = tmp_path / "nope.log" if which == "missing" else tmp_path
    result = _run(str(path))
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: Could not open file '{path}'")
    assert len(result.output.strip().splitlines()) == 1


def test_the_sites_overrides_apply_without_the_recurrence_escalation() -> None:
    policy = XidPolicyConfig(
        overrides={
            63: XidOverride(action=Action.DRAIN),
            95: XidOverride(count=1, window_s=60, then=Action.REPLACE),
        }
    )
    rows = _json(str(LINES), obj=SimpleNamespace(xid=policy))
    actions = {r["xid"]: r["action"] for r in rows}
    assert (actions[63], actions[95]) == ("drain", "reboot")
