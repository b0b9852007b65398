"""``hpresil incidents`` names the shared component a fault is put down to (issue 11):
here a configured power domain over node1 and node2, both losing a GPU at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpresil.auth import BearerToken
from hpresil.client import ControllerClient
from hpresil.config import Config, ControllerConfig, PolicyConfig
from hpresil.config.limits import LimitsConfig
from hpresil.config.topology import TopologyConfig
from tests.unit.cli.test_live import Capture, run, run_json
from tests.unit.controller.fakes import TOKEN, report, xid79


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return Config(
        controller=ControllerConfig(database=f"sqlite:///{tmp_path}/hpresil.db"),
        policy=PolicyConfig(expedite_requeue=False, limits=LimitsConfig(max_out_pct=100)),
        topology=TopologyConfig(switches="none", power={"pdu1": "node[1-2]"}),
    )


@pytest.fixture
def shared(controller: str) -> list[int]:
    with ControllerClient(controller, BearerToken(TOKEN)) as client:
        return [client.post_report(report(n, xid79())).incidents[0] for n in ("node1", "node2")]


def test_the_listing_names_the_power_domain(
    config: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch, shared: list[int]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    out = run(config, capsys, "incidents").splitlines()
    rows = [line for line in out if "node1" in line or "node2" in line]
    assert len(rows) == 2 and all("power pdu1" in row for row in rows)
    listing = run(config, capsys, "incidents", "--shared")
    assert "power pdu1" in listing and "node1,node2" in listing and "gpu_lost_pcie" in listing
    one = run(config, capsys, "incidents", str(shared[0]))
    assert "shared: power pdu1 (shared incident #1; not counted against the node's MTTF)" in one


def test_json_and_mttf(config: Path, capsys: Capture, shared: list[int]) -> None:
    (fault,) = run_json(config, capsys, "incidents", "--shared")
    assert (fault["component"], fault["incidents"]) == ("pdu1", shared)
    listed = run_json(config, capsys, "incidents", "--status", "open")
    assert [i["shared"]["component"] for i in listed] == ["pdu1", "pdu1"]
    view = run_json(config, capsys, "stats", "mttf", "--by", "node")
    assert view["total"]["failures"] == 0
