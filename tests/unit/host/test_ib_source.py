"""The InfiniBand source: counter deltas between collections, link-down history."""

from __future__ import annotations

import shutil
from pathlib import Path

from hpresil.config.host import IbConfig
from hpresil.host.ib import IbFacts, IbPortFacts, IbSource
from tests.unit.host.builders import Clock, ib_tree, set_port


def source(root: Path, clock: Clock, **config: object) -> IbSource:
    return IbSource(IbConfig.model_validate({"sysfs_root": root, **config}), clock=clock)


def port(facts: IbFacts, name: str) -> IbPortFacts:
    return next(p for p in facts.ports if p.port.name == name)


def test_first_collection_has_no_deltas(tmp_path: Path) -> None:
    facts = source(ib_tree(tmp_path), Clock()).collect()
    assert len(facts.ports) == 8 and facts.interval_s is None
    assert all(p.deltas == {} and p.downs == () for p in facts.ports)


def test_rising_counters_become_deltas_and_a_link_down_event(tmp_path: Path) -> None:
    root, clock = ib_tree(tmp_path), Clock()
    src = source(root, clock)
    src.collect()
    ib_tree(tmp_path, "counters-rising")
    at = clock.advance(5)
    facts = src.collect()
    rising = port(facts, "mlx5_2/1")
    assert facts.interval_s == 5.0
    assert {k: v for k, v in rising.deltas.items() if v} == {
        "symbol_error": 37,
        "link_error_recovery": 2,
        "link_downed": 1,
        "port_rcv_errors": 14,
        "port_xmit_data": 9123456,
        "port_rcv_data": 8765432,
    }
    assert rising.downs == (at,)
    assert not any(v for p in facts.ports if p is not rising for v in p.deltas.values())


def test_a_counter_that_went_back_was_reset_and_has_no_delta(tmp_path: Path) -> None:
    root, clock = ib_tree(tmp_path, "counters-rising"), Clock()
    src = source(root, clock)
    src.collect()
    shutil.rmtree(root)
    ib_tree(tmp_path)  # counters back to 0: perfquery -R or a driver reload
    clock.advance(5)
    rising = port(src.collect(), "mlx5_2/1")
    assert "symbol_error" not in rising.deltas and rising.downs == ()


def test_down_events_are_kept_for_the_window_then_forgotten(tmp_path: Path) -> None:
    root, clock = ib_tree(tmp_path), Clock()
    src = source(root, clock, flap_window_s=3600)
    src.collect()
    for _ in range(3):  # down, then back, three times; link_downed sits at 0 here
        clock.advance(60)
        set_port(root, "mlx5_0/1", "1: DOWN", "2: Polling")
        src.collect()
        clock.advance(60)
        set_port(root, "mlx5_0/1", "4: ACTIVE", "5: LinkUp")
        facts = src.collect()
    assert len(port(facts, "mlx5_0/1").downs) == 3
    clock.advance(3600 - 60 * 4)  # the first event leaves the window
    assert len(port(src.collect(), "mlx5_0/1").downs) == 2
    clock.advance(3600)
    assert port(src.collect(), "mlx5_0/1").downs == ()


def test_a_saturated_link_downed_still_sees_transitions(tmp_path: Path) -> None:
    root, clock = ib_tree(tmp_path), Clock()  # mlx5_1 has link_downed at 255
    src = source(root, clock)
    src.collect()
    clock.advance(5)
    set_port(root, "mlx5_1/1", "1: DOWN", "3: Disabled")
    assert len(port(src.collect(), "mlx5_1/1").downs) == 1


def test_a_port_that_vanishes_is_reported_missing(tmp_path: Path) -> None:
    root, clock = ib_tree(tmp_path), Clock()
    src = source(root, clock)
    src.collect()
    shutil.rmtree(root / "mlx5_7")
    facts = src.collect()
    assert facts.missing == ("mlx5_7/1",) and len(facts.ports) == 7


def test_ignored_ports_are_not_collected(tmp_path: Path) -> None:
    root = ib_tree(tmp_path, "roce-bond")
    assert len(source(root, Clock()).collect().ports) == 9
    facts = source(root, Clock(), ignore_ports="^mlx5_bond_").collect()
    assert [p.port.name for p in facts.ports] == [f"mlx5_{i}/1" for i in range(8)]
