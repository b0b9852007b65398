"""The CLI against a real controller (uvicorn, SQLite, the fake Slurm backend)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hpresil.adapters.slurm import Slurm
from hpresil.auth import BearerToken
from hpresil.cli.main import main
from hpresil.client import ControllerClient
from hpresil.config import ControllerConfig
from hpresil.config.recovery import RecoveryConfig
from hpresil.controller.reconcile import Reconciler
from hpresil.controller.recovery import Ladder
from hpresil.controller.remediation import Executor
from hpresil.store import Store
from hpresil.store.models import NodeRow
from tests.unit.controller.fakes import TOKEN, FakeBackend, FakeClock, report, xid79

Capture = pytest.CaptureFixture[str]


def run(config: Path, capsys: Capture, *args: str) -> str:
    """``hpresil --config CONFIG ARGS``: its stdout; it must succeed, quiet on stderr."""
    code = main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    return out


def run_json(config: Path, capsys: Capture, *args: str) -> Any:
    return json.loads(run(config, capsys, *args, "--json"))


@pytest.fixture
def incident(controller: str, executor: Executor, backend: FakeBackend) -> int:
    """node2 reports XID 79 on GPU 3 and the executor drains it: the incident's id."""
    with ControllerClient(controller, BearerToken(TOKEN)) as client:
        ack = client.post_report(report("node2", xid79(index=3)))
    assert executor.run_due() >= 1
    assert "DRAIN" in backend.nodes_by_name["node2"].states
    (number,) = ack.incidents
    return number


def test_status_json_shows_the_failed_node_and_its_incident(
    config: Path, capsys: Capture, incident: int
) -> None:
    (node,) = [n for n in run_json(config, capsys, "status") if n["name"] == "node2"]
    assert node["health"] == "fail" and node["open_incident"] == incident


def test_incidents_json_list_and_one(config: Path, capsys: Capture, incident: int) -> None:
    (listed,) = run_json(config, capsys, "incidents")
    one = run_json(config, capsys, "incidents", str(incident))
    for found in (listed, one):
        assert found["id"] == incident and found["node"] == "node2"
        assert found["category"] == "gpu_lost_pcie"
        assert found["xid"] == 79 and found["gpu"]["index"] == 3


def test_human_output_names_the_node_and_the_incident(
    config: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch, incident: int
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich would squeeze the table into 80 columns
    status = run(config, capsys, "status")
    row = next(line for line in status.splitlines() if "node2" in line)
    assert f"#{incident}" in row and "fail" in row
    shown = run(config, capsys, "incidents", str(incident))
    assert f"incident #{incident} on node2" in shown and "gpu_lost_pcie" in shown


def test_an_incident_shows_its_recovery_ladder(
    config: Path,
    capsys: Capture,
    monkeypatch: pytest.MonkeyPatch,
    incident: int,
    store: Store,
    slurm: Slurm,
    clock: FakeClock,
    executor: Executor,
) -> None:
    """The reboot rung's step, running then passed, in ``hpresil incidents ID``."""
    monkeypatch.setenv("COLUMNS", "250")
    ladder = Ladder(store, slurm, RecoveryConfig(enabled=True), clock)
    Reconciler(store, slurm, ControllerConfig(), clock=clock).run_once()  # drained by hpresil
    ladder.run_once([])
    executor.run_due()
    (step,) = run_json(config, capsys, "incidents", str(incident))["recovery"]
    assert (step["rung"], step["status"]) == ("reboot", "running")
    backend = slurm.backend
    assert isinstance(backend, FakeBackend)
    backend.booted("node2", clock.advance(40))
    ladder.run_once([])
    shown = run(config, capsys, "incidents", str(incident))
    row = next(line for line in shown.splitlines() if "reboot" in line and "passed" in line)
    assert "awaiting burn-in" in row


def test_hold_then_release(config: Path, capsys: Capture, store: Store) -> None:
    said = run(config, capsys, "hold", "node1", "--why", "bob: reseating GPU 3")
    assert said == "node1: held by operator (token): bob: reseating GPU 3\n"
    with store.read() as s:
        row = s.get(NodeRow, "node1")
        assert row is not None and (row.hold_by, row.hold_why) == (
            "operator (token)",
            "bob: reseating GPU 3",
        )
    assert run_json(config, capsys, "release", "node1")["held_by"] is None
    with store.read() as s:
        row = s.get(NodeRow, "node1")
        assert row is not None and row.hold_by is None


def test_stats_mttf_by_node_counts_the_failure(
    config: Path, capsys: Capture, incident: int
) -> None:
    view = run_json(config, capsys, "stats", "mttf", "--by", "node")
    rows = {r["key"]: r for r in view["rows"]}
    assert rows["node2"]["failures"] == 1
    assert view["total"]["failures"] == 1


def test_drain_then_resume(config: Path, capsys: Capture, backend: FakeBackend) -> None:
    assert run(config, capsys, "drain", "node1", "--reason", "fan").startswith("node1: drained")
    ((_, node, state, reason),) = backend.writes("state")
    assert (node, state) == ("node1", "drain")
    assert isinstance(reason, str) and reason.startswith("hpresil:") and "fan" in reason
    assert run(config, capsys, "resume", "node1").startswith("node1: resumed")
    assert "DRAIN" not in backend.nodes_by_name["node1"].states


def test_burnin_gate_drains_the_node_into_the_burn_in_gate(
    config: Path, capsys: Capture, backend: FakeBackend
) -> None:
    said = run(config, capsys, "burnin", "--gate", "node1", "--why", "RMA 4411 back")
    assert said.startswith("node1: drained, incident #") and "burn-in passes" in said
    ((_, node, state, reason),) = backend.writes("state")
    assert (node, state) == ("node1", "drain") and "RMA 4411 back" in str(reason)
    (opened,) = run_json(config, capsys, "incidents")
    (gate,) = run_json(config, capsys, "incidents", str(opened["id"]))["recovery"]
    assert (gate["rung"], gate["status"]) == ("gate", "passed")
    assert gate["why"] == "operator (token): burn-in gate: RMA 4411 back"


def test_resume_refuses_a_node_someone_else_drained(
    config: Path, capsys: Capture, backend: FakeBackend
) -> None:
    backend.set_node("node3", "IDLE", "DRAIN", reason="admin: psu")
    code = main(["--config", str(config), "resume", "node3"])
    out, err = capsys.readouterr()
    assert code != 0 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("hpresil: ") and "someone else" in line and "admin: psu" in line
    assert backend.nodes_by_name["node3"].reason == "admin: psu"
    assert backend.writes("state") == []


def test_tables_print_text_from_slurm_verbatim_not_as_rich_markup(
    config: Path,
    capsys: Capture,
    monkeypatch: pytest.MonkeyPatch,
    controller: str,
    executor: Executor,
    backend: FakeBackend,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    backend.set_node("node3", "IDLE", "DRAIN", reason="[ticket 7] psu [/]")
    assert run(config, capsys, "drain", "node3", "--reason", "x").startswith("node3: foreign")
    backend.add_job(11, "node2", name="[bold]train[/]")
    with ControllerClient(controller, BearerToken(TOKEN)) as client:
        (number,) = client.post_report(report("node2", xid79())).incidents
    executor.run_due()
    assert "[ticket 7] psu [/]" in run(config, capsys, "status")
    assert "[bold]train[/]" in run(config, capsys, "incidents", str(number))
