"""Integration tests drive a real Slurm lab (slurmctld + 4 slurmd, munge) with the
hpresil controller and one agent per node, all on this machine."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

from lab import Lab  # noqa: E402
from scenario import ScenarioError, api_get, node_state, wait_agents, wait_for  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0 or not shutil.which("slurmctld"):
        pytest.skip("the Slurm lab needs root and slurm-wlm (scripts/setup installs it)")
    root = Path(tempfile.mkdtemp(prefix="hpresil-it-"))
    the_lab = Lab(root=root, slurmd_base_port=17101, ctld_port=16917, controller_port=18887)
    try:
        the_lab.up(hpresil=True)
        wait_agents(the_lab)
        yield the_lab
    finally:
        the_lab.down()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def clean_lab(lab: Lab) -> Iterator[Lab]:
    """The lab with every node in service and healthy again after the test.

    GPU faults are cleared and fresh healthy verdicts awaited *before* nodes are
    resumed: otherwise the HealthCheckProgram hook could rightly drain a node again
    from a verdict that still says "fail". So are the agents' spools and the
    controller's queued actions: a fault report spooled while the controller was down
    (and the drain it queues) must be taken in before the nodes are resumed, or it
    drains a node again right after."""
    yield lab
    lab.slurm(["scancel", "--full", "--quiet", "-p", "gpu"])
    for node in lab.node_names:
        lab.heal(node)
    lab.up()
    lab.start_controller()
    try:
        wait_for("healthy verdicts on every node", lambda: _verdicts_ok(lab), 60, 0.2)
    except ScenarioError as exc:
        raise ScenarioError(f"{exc}: {_verdicts(lab)}") from None
    wait_for("every spooled report delivered", lambda: not _spooled(lab), 60, 0.2)
    wait_for("no action waiting", lambda: not _pending_actions(lab), 90, 0.5)
    for node in lab.node_names:
        state, _ = node_state(lab, node)
        if "DRAIN" in state or "DOWN" in state:
            lab.slurm(["scontrol", "update", f"nodename={node}", "state=resume"])
    wait_agents(lab)


def _spooled(lab: Lab) -> list[Path]:
    """Reports the agents still hold for the controller."""
    return [p for n in lab.node_names for p in (lab.root / "spool" / n).glob("*.json")]


def _pending_actions(lab: Lab) -> list[int]:
    """Actions of open incidents the controller has yet to carry out."""
    opened: Any = api_get(lab, "/v1/incidents?status=open")
    waiting = []
    for incident in opened:
        detail: Any = api_get(lab, f"/v1/incidents/{incident['id']}")
        waiting += [a["id"] for a in detail["actions"] if a["status"] == "pending"]
    return waiting


def _verdicts(lab: Lab) -> dict[str, str]:
    """Each node's cached verdict status ("missing" if none can be read)."""
    found = {}
    for node in lab.node_names:
        try:
            data = json.loads((lab.root / "run" / f"{node}.verdict.json").read_text())
            found[node] = str(data.get("status"))
        except (OSError, ValueError):
            found[node] = "missing"
    return found


def _verdicts_ok(lab: Lab) -> bool:
    return all(status not in ("fail", "missing") for status in _verdicts(lab).values())
