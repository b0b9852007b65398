"""The lab's InfiniBand stand-in (scripts/ib_sysfs.py): a sysfs tree the real adapter
reads, ports that go down and up, and never a write under /sys."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpresil import config
from hpresil.adapters.ib import IbSysfs
from hpresil.assembly import sources_for
from hpresil.host.ib import IbFacts
from tests.labtools import ib_sysfs


def test_created_tree_reads_as_eight_active_ndr_ports(tmp_path: Path) -> None:
    ib_sysfs.create_tree(tmp_path)
    ports = IbSysfs(tmp_path).ports()
    assert len(ports) == 8 and all(p.active for p in ports)


def test_port_goes_down_and_up(tmp_path: Path) -> None:
    ib_sysfs.create_tree(tmp_path)
    ib_sysfs.set_port(tmp_path, "mlx5_3/1", up=False)
    down = {p.name: p for p in IbSysfs(tmp_path).ports()}["mlx5_3/1"]
    assert not down.active
    ib_sysfs.set_port(tmp_path, "mlx5_3/1", up=True)
    assert all(p.active for p in IbSysfs(tmp_path).ports())
    counter = tmp_path / "mlx5_3" / "ports" / "1" / "counters" / "link_downed"
    assert counter.read_text().strip() == "1"


def test_unknown_port_and_real_sysfs_are_refused(tmp_path: Path) -> None:
    ib_sysfs.create_tree(tmp_path)
    with pytest.raises(ValueError, match="no InfiniBand port"):
        ib_sysfs.set_port(tmp_path, "mlx5_9/1", up=False)
    with pytest.raises(ValueError, match="refusing"):
        ib_sysfs.set_port(Path("/sys/class/infiniband"), "mlx5_0/1", up=False)


def test_each_node_reads_its_own_tree(tmp_path: Path) -> None:
    for node in ("n1", "n2"):
        ib_sysfs.create_tree(tmp_path / node)
    ib_sysfs.set_port(tmp_path / "n2", "mlx5_0/1", up=False)
    cfg = config.parse({"checks": {"ib": {"sysfs_root": f"{tmp_path}/{{node}}"}}})
    facts = {}
    for node in ("n1", "n2"):
        (source,) = [s for s in sources_for(cfg, node) if s.kind is IbFacts]
        facts[node] = source.collect()
    assert facts["n1"] != facts["n2"]
