"""The ib check on facts collected from fixture trees."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from hpresil.checks.ib import IbCheck
from hpresil.config.host import IbConfig
from hpresil.host.ib import IbFacts, IbSource
from hpresil.vocab import Action, Category, CheckResult, Status
from hpresil.vocab.snapshot import Snapshot
from tests.unit.host.builders import Clock, ib_tree, set_port, snapshot

NDR = {"expected_ports": 8, "min_rate_gbps": 400}


def judge(root: Path, **config: object) -> dict[str, CheckResult]:
    cfg = IbConfig.model_validate({"sysfs_root": root, **config})
    results = IbCheck(cfg).evaluate(snapshot(IbSource(cfg, clock=Clock()).collect()))
    return {str(r.evidence.get("port", "node")): r for r in results}


def bad(results: dict[str, CheckResult]) -> dict[str, CheckResult]:
    return {k: r for k, r in results.items() if r.status is not Status.OK}


def test_a_healthy_ndr_node_is_ok_port_by_port(tmp_path: Path) -> None:
    results = judge(ib_tree(tmp_path), **NDR)
    assert len(results) == 8 and not bad(results)
    assert results["mlx5_0/1"].summary == "mlx5_0 port 1: ACTIVE/LinkUp at 400 Gb/s"
    assert results["mlx5_1/1"].evidence["saturated"] == [
        "excessive_buffer_overrun_errors",
        "link_downed",
    ]


def test_a_down_port_fails_with_a_drain(tmp_path: Path) -> None:
    (down,) = bad(judge(ib_tree(tmp_path, "port-down"), **NDR)).values()
    assert (down.status, down.action, down.category) == (
        Status.FAIL,
        Action.DRAIN,
        Category.IB_NETWORK,
    )
    assert down.summary == "mlx5_3 port 1: link is DOWN (Disabled)"


def test_a_port_below_the_expected_rate_fails(tmp_path: Path) -> None:
    root = ib_tree(tmp_path, "rate-hdr")
    (slow,) = bad(judge(root, **NDR)).values()
    assert slow.status is Status.FAIL and slow.action is Action.DRAIN
    assert "200 Gb/sec (4X HDR), below 400 Gb/s" in slow.summary
    assert not bad(judge(root))  # no rate configured: no rate judged


def test_rising_error_counters_warn(tmp_path: Path) -> None:
    cfg = IbConfig.model_validate({"sysfs_root": ib_tree(tmp_path), **NDR})
    clock, check = Clock(), IbCheck(cfg)
    src = IbSource(cfg, clock=clock)
    src.collect()
    ib_tree(tmp_path, "counters-rising")
    clock.advance(5)
    results = check.evaluate(snapshot(src.collect()))
    (rising,) = [r for r in results if r.status is not Status.OK]
    assert (rising.status, rising.action, rising.category) == (
        Status.WARN,
        Action.WATCH,
        Category.IB_NETWORK,
    )
    assert rising.summary == (
        "mlx5_2 port 1: went down once in 12 h; "
        "link_downed, link_error_recovery, port_rcv_errors, symbol_error rising"
    )
    assert rising.evidence["deltas"]["symbol_error"] == 37
    clock.advance(5)  # no new errors; the link-down stays on watch for the window
    (still,) = [r for r in check.evaluate(snapshot(src.collect())) if r.status is not Status.OK]
    assert still.summary == "mlx5_2 port 1: went down once in 12 h"
    assert "deltas" not in still.evidence
    clock.advance(12 * 3600)
    assert {r.status for r in check.evaluate(snapshot(src.collect()))} == {Status.OK}


def test_fail_deltas_turn_a_link_down_into_a_failure(tmp_path: Path) -> None:
    cfg = IbConfig(sysfs_root=ib_tree(tmp_path), fail_deltas={"link_downed": 0})
    src = IbSource(cfg, clock=Clock())
    src.collect()
    ib_tree(tmp_path, "counters-rising")
    results = IbCheck(cfg).evaluate(snapshot(src.collect()))
    (failed,) = [r for r in results if r.status is not Status.OK]
    assert failed.status is Status.FAIL and failed.summary == "mlx5_2 port 1: link_downed rising"
    assert failed.evidence["downs_in_window"] == 1


def test_flapping_fails_once_the_count_is_reached_in_the_window(tmp_path: Path) -> None:
    root, clock = ib_tree(tmp_path), Clock()
    cfg = IbConfig(sysfs_root=root, flap_count=3, flap_window_s=12 * 3600)
    src, check = IbSource(cfg, clock=clock), IbCheck(cfg)
    src.collect()
    statuses = []
    for _ in range(3):
        clock.advance(3600)
        set_port(root, "mlx5_6/1", "1: DOWN", "2: Polling")
        src.collect()
        clock.advance(60)
        set_port(root, "mlx5_6/1", "4: ACTIVE", "5: LinkUp")
        by_port = {r.evidence["port"]: r for r in check.evaluate(snapshot(src.collect()))}
        statuses.append(by_port["mlx5_6/1"].status)
    assert statuses == [Status.WARN, Status.WARN, Status.FAIL]
    flapping = by_port["mlx5_6/1"]
    assert flapping.summary == "mlx5_6 port 1: went down 3 times in 12 h (flapping)"
    assert flapping.action is Action.DRAIN and flapping.evidence["downs_in_window"] == 3
    clock.advance(12 * 3600)
    by_port = {r.evidence["port"]: r for r in check.evaluate(snapshot(src.collect()))}
    assert by_port["mlx5_6/1"].status is Status.OK


def test_no_devices_is_unsupported_unless_ports_are_expected(tmp_path: Path) -> None:
    (none,) = judge(tmp_path / "absent").values()
    assert none.status is Status.UNSUPPORTED
    (missing,) = judge(tmp_path / "absent", expected_ports=8).values()
    assert missing.status is Status.FAIL and missing.summary == "InfiniBand: 0 of 8 ports found"


def test_a_missing_port_fails_on_the_node(tmp_path: Path) -> None:
    root = ib_tree(tmp_path)
    cfg = IbConfig(sysfs_root=root)
    src = IbSource(cfg, clock=Clock())
    src.collect()
    shutil.rmtree(root / "mlx5_7")  # the HCA fell off the bus
    node = IbCheck(cfg).evaluate(snapshot(src.collect()))[0]
    assert node.status is Status.FAIL and node.summary == "InfiniBand: port mlx5_7/1 disappeared"


def test_roce_ports_are_judged_alike_and_say_so(tmp_path: Path) -> None:
    root = ib_tree(tmp_path, "roce-bond")
    bond = judge(root, min_rate_gbps=400)["mlx5_bond_0/1"]
    assert bond.status is Status.FAIL
    assert bond.summary.startswith("mlx5_bond_0 port 1 (RoCE): runs at 200 Gb/sec")
    assert bond.evidence["link_layer"] == "Ethernet" and "RoCE" in bond.evidence["note"]
    assert "mlx5_bond_0/1" not in judge(root, min_rate_gbps=400, ignore_ports="^mlx5_bond_")


def test_a_failed_collection_is_unknown() -> None:
    snap = Snapshot(node="n", taken_at=snapshot().taken_at)
    assert not IbCheck().supported(snap)
    failed = snapshot(errors={IbFacts: "ib did not return within 10 s"})
    (result,) = IbCheck().evaluate(failed)
    assert result.status is Status.UNKNOWN and "did not return" in result.summary


def test_config_names_unknown_counters_and_bad_patterns() -> None:
    with pytest.raises(ValidationError, match=r"unknown counter symbol_errors .*valid: VL15"):
        IbConfig(warn_deltas={"symbol_errors": 1})
    with pytest.raises(ValidationError, match="not a regular expression"):
        IbConfig(ignore_ports="mlx5_[")
