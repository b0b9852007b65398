"""``hpresil status NODES --state --unhealthy --limit --after`` against a real controller."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hpresil.auth import BearerToken
from hpresil.cli import nodes
from hpresil.cli.main import main
from hpresil.client import ControllerClient
from tests.unit.controller.fakes import TOKEN, report, xid79

Capture = pytest.CaptureFixture[str]


def status(config: Path, capsys: Capture, *args: str) -> tuple[str, str]:
    code = main(["--config", str(config), "status", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def listed(config: Path, capsys: Capture, *args: str) -> list[str]:
    out, _ = status(config, capsys, *args, "--json")
    found: list[dict[str, Any]] = json.loads(out)
    return [n["name"] for n in found]


@pytest.fixture
def fleet(controller: str) -> None:
    """node1 .. node3 report, node2 with XID 79 (its incident open)."""
    with ControllerClient(controller, BearerToken(TOKEN)) as client:
        for name in ("node1", "node3"):
            client.post_report(report(name))
        client.post_report(report("node2", xid79()))


@pytest.mark.usefixtures("fleet")
def test_a_host_list_a_state_and_the_unhealthy(config: Path, capsys: Capture) -> None:
    assert listed(config, capsys, "node[2-3]") == ["node2", "node3"]
    assert listed(config, capsys, "--unhealthy") == ["node2"]
    assert listed(config, capsys, "node[1-3]", "--unhealthy") == ["node2"]


@pytest.mark.usefixtures("fleet")
def test_a_page_says_how_to_ask_for_the_next(config: Path, capsys: Capture) -> None:
    out, err = status(config, capsys, "--limit", "2", "--json")
    assert [n["name"] for n in json.loads(out)] == ["node1", "node2"]
    assert err.strip() == "more follow: the same command with --after node2"
    out, err = status(config, capsys, "--limit", "2", "--after", "node2", "--json")
    assert [n["name"] for n in json.loads(out)] == ["node3"] and err == ""


@pytest.mark.usefixtures("fleet")
def test_a_long_listing_prints_plain_columns(
    config: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nodes, "RICH_ROWS", 2)
    out, _ = status(config, capsys)
    header, *rows = out.splitlines()
    assert header.split() == [
        "NODE",
        "SLURM",
        "HEALTH",
        "INCIDENT",
        "LAST",
        "REPORT",
        "GPUS",
        "REASON",
    ]
    assert [r.split()[0] for r in rows] == ["node1", "node2", "node3"]
    assert rows[1].split()[2:4] == ["fail", "#1"] and rows[2].split()[2:4] == ["ok", "-"]
    starts = {r.index(r.split()[2]) for r in rows}
    assert starts == {header.index("HEALTH")}  # aligned
