"""Reading InfiniBand ports from sysfs trees in the kernel's format."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from hpresil.adapters.ib import IbSysfs, parse_rate, parse_state
from tests.unit.host.builders import HEALTHY, ib_tree


def test_healthy_ndr_node_has_eight_active_400g_ports() -> None:
    ports = IbSysfs(HEALTHY).ports()
    assert [p.name for p in ports] == [f"mlx5_{i}/1" for i in range(8)]
    first = ports[0]
    assert (first.state_id, first.state, first.phys_state_id, first.phys_state) == (
        4,
        "ACTIVE",
        5,
        "LinkUp",
    )
    assert (first.rate_gbps, first.rate, first.link_layer) == (
        400.0,
        "400 Gb/sec (4X NDR)",
        "InfiniBand",
    )
    assert first.active and not first.is_ethernet and first.error is None
    assert first.counters["symbol_error"] == 0 and first.counters["port_xmit_data"] > 0


def test_saturated_counters_are_recognised() -> None:
    by_name = {p.name: p for p in IbSysfs(HEALTHY).ports()}
    assert by_name["mlx5_1/1"].saturated() == ["excessive_buffer_overrun_errors", "link_downed"]
    assert by_name["mlx5_0/1"].saturated() == []


def test_a_down_port_reads_as_not_active(tmp_path: Path) -> None:
    root = ib_tree(tmp_path, "port-down")
    port = {p.name: p for p in IbSysfs(root).ports()}["mlx5_3/1"]
    assert (port.state, port.phys_state, port.phys_state_id) == ("DOWN", "Disabled", 3)
    assert not port.active


def test_no_infiniband_folder_means_no_ports(tmp_path: Path) -> None:
    assert IbSysfs(tmp_path / "absent").ports() == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4: ACTIVE", (4, "ACTIVE")), ("  5 :  LinkUp \n", (5, "LinkUp")), ("junk", (None, "junk"))],
)
def test_parse_state(text: str, expected: tuple[int | None, str]) -> None:
    assert parse_state(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("400 Gb/sec (4X NDR)", 400.0),
        ("2.5 Gb/sec (1X SDR)", 2.5),
        ("25.78125 Gb/sec", 25.78125),
        ("0 GB/sec", None),
        ("", None),
    ],
)
def test_parse_rate(text: str, expected: float | None) -> None:
    assert parse_rate(text) == expected


def test_unanswerable_counters_are_left_out_and_einval_is_not_retried(tmp_path: Path) -> None:
    root = ib_tree(tmp_path)
    counters = root / "mlx5_0" / "ports" / "1" / "counters"
    (counters / "symbol_error").write_text("N/A (no PMA)\n")
    reads: list[Path] = []

    def read(path: Path) -> str:
        reads.append(path)
        if path == counters / "link_downed":
            raise OSError(errno.EINVAL, "Invalid argument")
        return path.read_text().strip()

    sysfs = IbSysfs(root, read=read)
    for _ in range(2):
        port = sysfs.ports()[0]
        assert "symbol_error" not in port.counters and "link_downed" not in port.counters
        assert port.counters["port_rcv_errors"] == 0 and port.error is None
    assert reads.count(counters / "link_downed") == 1


def test_an_unreadable_state_marks_the_port_not_the_node(tmp_path: Path) -> None:
    root = ib_tree(tmp_path)

    def read(path: Path) -> str:
        if "mlx5_4" in path.parts and path.name == "state":
            raise OSError(errno.EIO, "Input/output error")
        return path.read_text().strip()

    ports = {p.name: p for p in IbSysfs(root, read=read).ports()}
    assert "Input/output error" in (ports["mlx5_4/1"].error or "")
    assert ports["mlx5_0/1"].error is None and len(ports) == 8
