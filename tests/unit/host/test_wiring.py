"""Host sources and checks built from configuration, run through the real collector."""

from __future__ import annotations

from pathlib import Path

from hpresil.assembly import host_monitoring
from hpresil.checks.base import CheckRunner, Registry
from hpresil.config.host import (
    HeadroomConfig,
    IbConfig,
    MountsConfig,
    ProcessesConfig,
    ServicesConfig,
)
from hpresil.host.collector import Collector
from hpresil.vocab import Status
from hpresil.vocab.gpu import GpuSample
from tests.unit.host.builders import ib_tree


class NoGpus:
    def devices(self) -> list[GpuSample]:
        return []

    def close(self) -> None:
        pass


def test_each_configured_area_gets_a_source_and_a_check() -> None:
    sources, checks = host_monitoring(ib=IbConfig(), headroom=HeadroomConfig())
    assert [s.name for s in sources] == ["ib", "headroom"]
    assert [c.name for c in checks] == ["ib", "headroom"]
    assert host_monitoring() == ([], [])


def test_collected_and_judged_through_the_agent_machinery(tmp_path: Path) -> None:
    sources, checks = host_monitoring(
        ib=IbConfig(sysfs_root=ib_tree(tmp_path, "port-down"), expected_ports=8),
        mounts=MountsConfig(required=("/",)),
        headroom=HeadroomConfig(paths=(str(tmp_path),)),
        processes=ProcessesConfig(),
        services=ServicesConfig(required=()),
    )
    snap = Collector("node1", NoGpus(), sources=sources).collect()
    results = CheckRunner(Registry(checks)).run(snap)
    ib = [r for r in results if r.check == "ib"]
    assert len(ib) == 8 and [r.summary for r in ib if r.status is Status.FAIL] == [
        "mlx5_3 port 1: link is DOWN (Disabled)"
    ]
    assert {r.check for r in results} == {"ib", "mounts", "headroom", "processes"}
    assert all(r.status is not Status.UNKNOWN for r in results)
