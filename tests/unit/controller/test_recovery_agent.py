"""The recovery ladder's rungs the node's agent runs (hpresil.controller.commands): a
GPU reset and a burn-in, given in the answers to the node's reports and ended by the
report of their results; then back to service. A refused reset climbs to a reboot, a
failed burn-in to replace; a burn-in that could not check, or an agent that never
answers, leaves the node to an operator. The real ingest, executor, reconciler and
Slurm facade over the fake backend; the lab tests run it on real Slurm and real
agents (tests/integration/test_recovery.py)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from hpresil.controller import commands
from hpresil.store import Store
from hpresil.store.models import NodeResultsRow, ReportRow
from hpresil.vocab import Action, Category, CheckResult, Status
from tests.unit.controller.fakes import FakeBackend, FakeClock, gpu, report, result
from tests.unit.controller.ladderlab import Lab

pytestmark = pytest.mark.usefixtures("cfg")


@pytest.fixture(autouse=True)
def fresh_offers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every report sees the commands waiting now (the controller reads them once a
    second: the tests do not wait for it)."""
    monkeypatch.setattr(commands, "REFRESH_S", 0.0)


def ecc_reset(index: int = 2) -> CheckResult:
    """An uncorrectable ECC error the policy answers with a GPU reset."""
    hit = result(Status.FAIL, Action.RESET_GPU, Category.HBM_ECC, check="xid", index=index, xid=48)
    return hit.model_copy(update={"gpu": gpu(index)})


def given(lab: Lab, node: str = "node2") -> list[dict[str, Any]]:
    """The commands in the answer to the node's next report."""
    ack = lab.client.post("/v1/reports", json=report(node).model_dump(mode="json")).json()
    return list(ack.get("commands", []))


def answer(lab: Lab, command: int, *results: CheckResult, node: str = "node2") -> None:
    sent = report(node, *results).model_copy(update={"command": command})
    assert lab.client.post("/v1/reports", json=sent.model_dump(mode="json")).status_code == 200


def ok(check: str, index: int | None = None) -> CheckResult:
    return result(Status.OK, check=check, index=index)


def failed(check: str, index: int | None = 5) -> CheckResult:
    return result(Status.FAIL, check=check, index=index).model_copy(
        update={"summary": f"GPU {index}: FAULTY"}
    )


def steps(lab: Lab, incident: int) -> list[tuple[str, str]]:
    return [(s["rung"], s["status"]) for s in lab.recovery(incident)]


def test_a_reset_clears_it_then_the_burn_in_passes_and_the_node_is_back(
    lab: Lab, backend: FakeBackend
) -> None:
    incident = lab.fault("node2", ecc_reset())
    lab.tick()
    [command] = given(lab)
    assert command["kind"] == "reset_gpu" and command["gpus"] == [gpu(2).pci_bus_id]
    assert given(lab) == [command]  # given again until answered (the agent runs it once)
    assert given(lab, "node3") == []  # only to its own node
    assert backend.writes("reboot") == []  # a reset, not a reboot

    answer(lab, command["id"], ok("gpu_reset"))
    assert steps(lab, incident) == [("reset_gpu", "passed")]
    assert given(lab) == []
    lab.tick()
    [burnin] = given(lab)
    assert burnin["kind"] == "burnin"
    answer(lab, burnin["id"], ok("burnin_gpu_burn", 0), ok("burnin_nccl"), ok("dcgm_diag"))
    lab.tick()  # the resume step starts
    lab.tick()  # ... and Slurm resumes the node
    assert steps(lab, incident) == [
        ("reset_gpu", "passed"),
        ("burnin", "passed"),
        ("resume", "passed"),
    ]
    detail = lab.client.get(f"/v1/incidents/{incident}").json()
    assert detail["status"] == "resolved"
    assert detail["recovery"][2]["outcome"] == "back in service"
    resumes = [a for a in detail["actions"] if a["kind"] == "resume"]
    assert [(a["status"], a["why"]) for a in resumes] == [
        ("done", f"recovery: #{incident} passed its burn-in")
    ]
    assert "DRAIN" not in backend.nodes_by_name["node2"].states


def test_a_refused_reset_climbs_to_a_reboot(lab: Lab, backend: FakeBackend) -> None:
    incident = lab.fault("node2", ecc_reset())
    lab.tick()
    [command] = given(lab)
    refused = failed("gpu_reset").model_copy(
        update={"summary": "GPU 0000:19:00: in use by Fabric Manager"}
    )
    answer(lab, command["id"], refused)
    lab.tick()
    assert steps(lab, incident) == [("reset_gpu", "failed"), ("reboot", "running")]
    reset, reboot = lab.recovery(incident)
    assert "reset refused: GPU 0000:19:00: in use by Fabric Manager" in reset["outcome"]
    assert reboot["why"].startswith("reset_gpu failed: reset refused")
    assert [c[1] for c in backend.writes("reboot")] == ["node2"]


def test_a_failed_burn_in_climbs_to_replace(
    lab: Lab, backend: FakeBackend, clock: FakeClock
) -> None:
    incident = lab.rebooting("node2")
    backend.booted("node2", clock.advance(30))
    lab.tick()  # the reboot passes
    lab.tick()  # the burn-in starts
    [command] = given(lab)
    answer(lab, command["id"], ok("burnin_nccl"), failed("burnin_gpu_burn"))
    lab.tick()
    lab.tick()
    assert steps(lab, incident) == [
        ("reboot", "passed"),
        ("burnin", "failed"),
        ("replace", "passed"),
    ]
    burnin = lab.recovery(incident)[1]
    assert burnin["outcome"] == "burn-in failed: GPU 5: FAULTY"
    node = backend.nodes_by_name["node2"]
    assert "DOWN" in node.states and f"#{incident} replace" in (node.reason or "")


def test_a_burn_in_that_could_not_check_leaves_the_node_to_an_operator(lab: Lab) -> None:
    incident = lab.fault("node2", ecc_reset())
    lab.tick()
    answer(lab, given(lab)[0]["id"], ok("gpu_reset"))
    lab.tick()
    nothing = result(Status.UNSUPPORTED, check="burnin_matmul", index=None)
    answer(lab, given(lab)[0]["id"], nothing)
    lab.tick()
    assert steps(lab, incident) == [("reset_gpu", "passed"), ("burnin", "stopped")]
    assert "could not check" in lab.recovery(incident)[1]["outcome"]
    assert lab.client.get(f"/v1/incidents/{incident}").json()["status"] == "open"


def test_an_agent_that_never_answers_stops_the_step(lab: Lab, clock: FakeClock) -> None:
    incident = lab.fault("node2", ecc_reset())
    lab.tick()
    clock.advance(301)  # recovery.reset_timeout_s: 300
    lab.tick()
    lab.tick()
    assert steps(lab, incident) == [("reset_gpu", "stopped")]
    assert "recovery.reset_timeout_s" in lab.recovery(incident)[0]["outcome"]
    assert given(lab) == []


def test_results_count_once_and_only_from_the_commands_own_node(lab: Lab) -> None:
    incident = lab.fault("node2", ecc_reset())
    lab.tick()
    [command] = given(lab)
    answer(lab, command["id"], ok("gpu_reset"), node="node3")  # not node3's command
    assert steps(lab, incident) == [("reset_gpu", "running")]
    answer(lab, command["id"], failed("gpu_reset"))
    answer(lab, command["id"], ok("gpu_reset"))  # a second answer changes nothing
    assert steps(lab, incident) == [("reset_gpu", "failed")]


def test_results_naming_no_such_command_are_taken_and_change_no_step(lab: Lab) -> None:
    incident = lab.fault("node2", ecc_reset())
    lab.tick()
    answer(lab, 9999, failed("gpu_reset"))
    assert steps(lab, incident) == [("reset_gpu", "running")]


def gate(lab: Lab, node: str = "node2") -> int:
    """``hpresil burnin --gate NODE``: the incident it opened."""
    asked = {"reason": "new node, first burn-in", "gate": True}
    answer = lab.client.post(f"/v1/nodes/{node}/drain", json=asked).json()
    assert answer["outcome"] == "drained"
    return int(answer["incident"])


def test_the_burn_in_gate_returns_a_node_only_once_its_burn_in_passes(
    lab: Lab, backend: FakeBackend
) -> None:
    incident = gate(lab)
    [marker] = lab.recovery(incident)
    assert (marker["rung"], marker["status"]) == ("gate", "passed")
    assert "new node, first burn-in" in marker["why"]
    lab.tick()
    [command] = given(lab)
    assert command["kind"] == "burnin"
    assert "DRAIN" in backend.nodes_by_name["node2"].states  # no job meanwhile
    answer(lab, command["id"], ok("burnin_gpu_burn", 0))
    lab.tick()
    lab.tick()
    assert steps(lab, incident) == [("gate", "passed"), ("burnin", "passed"), ("resume", "passed")]
    assert "DRAIN" not in backend.nodes_by_name["node2"].states
    assert backend.writes("reboot") == []


def test_a_gated_node_is_burnt_in_only_once_its_jobs_are_gone(
    lab: Lab, backend: FakeBackend
) -> None:
    backend.add_job(7, "node2", requeue=False)
    incident = gate(lab)
    lab.tick()
    assert steps(lab, incident) == [("gate", "passed")] and given(lab) == []
    backend.jobs_by_id.pop(7)
    lab.tick()
    assert steps(lab, incident) == [("gate", "passed"), ("burnin", "running")]


def test_a_gated_node_that_fails_its_burn_in_does_not_serve(lab: Lab) -> None:
    incident = gate(lab)
    lab.tick()
    answer(lab, given(lab)[0]["id"], failed("burnin_gpu_burn"))
    lab.tick()
    lab.tick()
    assert steps(lab, incident) == [("gate", "passed"), ("burnin", "failed"), ("replace", "passed")]


def test_a_commands_results_are_kept_but_are_not_the_nodes_state(lab: Lab, store: Store) -> None:
    """A refused reset, or a failed burn-in, is the step's outcome and a stored report,
    not a result that would keep the node unhealthy after it was repaired."""
    incident = lab.fault("node2", ecc_reset())
    lab.tick()
    answer(lab, given(lab)[0]["id"], failed("gpu_reset"))
    assert steps(lab, incident) == [("reset_gpu", "failed")]
    with store.read() as s:
        state = s.get(NodeResultsRow, "node2")
        assert state is not None and "gpu_reset" not in {r["check"] for r in state.results}
        kept = [
            r.body["results"] for r in s.scalars(select(ReportRow).where(ReportRow.node == "node2"))
        ]
        assert any(r["check"] == "gpu_reset" for results in kept for r in results)


UNASKED = "Node unexpectedly rebooted boot=1796610000 last response=1796609990"


def test_a_node_that_rebooted_unasked_is_taken_burnt_in_and_returned(
    lab: Lab, backend: FakeBackend
) -> None:
    backend.set_node("node2", "DOWN", reason=UNASKED)  # as slurmctld leaves it
    lab.tick()
    [opened] = lab.client.get("/v1/incidents?node=node2").json()
    assert (opened["category"], opened["action"]) == ("host", "reboot")
    incident = opened["id"]
    assert backend.nodes_by_name["node2"].reason == f"hpresil: #{incident} unexpected reboot"
    assert steps(lab, incident) == [("reboot", "passed")]
    lab.tick()
    [command] = given(lab)
    assert command["kind"] == "burnin" and backend.writes("reboot") == []
    answer(lab, command["id"], ok("burnin_gpu_burn", 0))
    lab.tick()
    lab.tick()
    assert steps(lab, incident) == [
        ("reboot", "passed"),
        ("burnin", "passed"),
        ("resume", "passed"),
    ]
    assert backend.nodes_by_name["node2"].states == frozenset()  # IDLE
    lab.tick()
    assert len(lab.client.get("/v1/incidents?node=node2").json()) == 1  # taken once


def test_a_node_someone_else_took_down_is_not_taken(lab: Lab, backend: FakeBackend) -> None:
    backend.set_node("node2", "DOWN", reason="bob: replacing the PSU")
    lab.tick()
    lab.tick()
    assert lab.client.get("/v1/incidents?node=node2").json() == []
    assert backend.nodes_by_name["node2"].reason == "bob: replacing the PSU"


def test_an_unexpected_reboot_is_taken_once_slurm_answers_again(
    lab: Lab, backend: FakeBackend
) -> None:
    backend.set_node("node2", "DOWN", reason=UNASKED)
    lab.reconciler.run_once([])  # seen in Slurm
    backend.fail_next = 99  # then slurmctld stops answering
    lab.ladder.run_once([])
    [opened] = lab.client.get("/v1/incidents?node=node2").json()
    assert backend.nodes_by_name["node2"].reason == UNASKED  # not taken yet
    backend.fail_next = 0
    lab.tick()
    assert backend.nodes_by_name["node2"].reason == f"hpresil: #{opened['id']} unexpected reboot"
    assert len(lab.client.get("/v1/incidents?node=node2").json()) == 1  # the same incident
