"""The recovery ladder's reboot rung (hpresil.controller.recovery): an XID 79 incident
on a node hpresil drained is rebooted through Slurm once the node is free, and the
step ends as Slurm says the node ended: back, timed out, taken over, resolved. The
real ingest, executor, reconciler and Slurm facade over the fake backend; the lab
test (tests/integration/test_recovery.py) runs it on real Slurm."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpresil.adapters.slurm import Slurm
from hpresil.config import Config, PolicyConfig
from hpresil.config.recovery import RecoveryConfig
from hpresil.controller.recovery import Ladder
from hpresil.controller.remediation import Executor
from hpresil.store import Store
from hpresil.vocab import Action, Status
from tests.standin import Answering
from tests.unit.controller.fakes import FakeBackend, FakeClock, result
from tests.unit.controller.ladderlab import Lab

pytestmark = pytest.mark.usefixtures("cfg")


def test_a_free_node_is_rebooted_through_slurm_and_comes_back_down(
    lab: Lab, backend: FakeBackend, clock: FakeClock
) -> None:
    incident = lab.rebooting("node2")
    reboots = backend.writes("reboot")
    assert reboots == [("reboot", "node2", "hpresil: #1 gpu_lost_pcie xid 79 gpu 3")]
    [step] = lab.recovery(incident)
    assert (step["rung"], step["status"], step["ended_at"]) == ("reboot", "running", None)
    assert "policy: reboot for #1" in step["why"]

    lab.tick()  # requested, not yet rebooted: the step waits
    assert lab.recovery(incident)[0]["status"] == "running"

    backend.booted("node2", clock.advance(30))
    step = lab.step_after_tick(incident)
    assert step["status"] == "passed" and "awaiting burn-in" in step["outcome"]
    assert step["ended_at"] is not None
    node = {n["name"]: n for n in lab.client.get("/v1/nodes").json()}["node2"]
    assert node["slurm_state"] == "DOWN" and node["drained_by_hpresil"] is True
    assert node["open_incident"] == incident  # back DOWN, taking no job, still ours

    lab.tick()
    assert len(backend.writes("reboot")) == 1  # one step, one reboot


def test_a_node_with_a_running_job_is_rebooted_once_the_job_is_gone(
    lab: Lab, backend: FakeBackend
) -> None:
    backend.add_job(7, "node2", requeue=False)  # not requeueable: it runs on
    incident = lab.rebooting("node2")
    assert backend.writes("reboot") == [] and lab.recovery(incident) == []
    backend.jobs_by_id.pop(7)
    lab.tick()
    assert [c[1] for c in backend.writes("reboot")] == ["node2"]


def test_only_resets_reboots_and_replacements_climb_the_ladder(
    lab: Lab, backend: FakeBackend
) -> None:
    drain_only = result(Status.FAIL, Action.DRAIN, check="ecc")
    incident = lab.fault("node2", drain_only)
    lab.tick()
    assert backend.writes("reboot") == [] and lab.recovery(incident) == []


def test_a_node_someone_else_drained_is_not_rebooted(lab: Lab, backend: FakeBackend) -> None:
    backend.set_node("node2", "IDLE", "DRAIN", reason="disk swap (bob)")
    incident = lab.rebooting("node2")
    assert backend.writes("reboot") == [] and lab.recovery(incident) == []


def test_an_operator_taking_the_node_over_stops_the_step(
    lab: Lab, backend: FakeBackend, clock: FakeClock
) -> None:
    incident = lab.rebooting("node2")
    backend.set_node("node2", "DOWN", "DRAIN", reason="bob: replacing the riser")
    step = lab.step_after_tick(incident)
    assert step["status"] == "stopped" and "bob: replacing the riser" in step["outcome"]


def test_slurm_saying_the_reboot_timed_out_fails_the_step(lab: Lab, backend: FakeBackend) -> None:
    incident = lab.rebooting("node2")
    reason = backend.nodes_by_name["node2"].reason
    backend.set_node(
        "node2", "DOWN", "DRAIN", reason=f"{reason} : reboot issued : reboot timed out"
    )
    step = lab.step_after_tick(incident)
    assert step["status"] == "failed" and "reboot timed out" in step["outcome"]


def test_a_node_not_back_in_time_fails_the_step(
    lab: Lab, backend: FakeBackend, clock: FakeClock
) -> None:
    incident = lab.rebooting("node2")
    clock.advance(599)
    lab.tick()
    assert lab.recovery(incident)[0]["status"] == "running"
    clock.advance(2)
    step = lab.step_after_tick(incident)
    assert step["status"] == "failed" and "not back after 601 s" in step["outcome"]


def test_slurm_down_while_the_node_reboots_leaves_the_step_waiting(
    lab: Lab, backend: FakeBackend, clock: FakeClock
) -> None:
    incident = lab.rebooting("node2")
    backend.fail_next = 1000
    lab.ladder.run_once([])
    assert lab.recovery(incident)[0]["status"] == "running"
    backend.fail_next = 0
    backend.booted("node2", clock.advance(20))
    lab.tick()
    assert lab.recovery(incident)[0]["status"] == "passed"


def test_an_operator_resume_ends_the_step(lab: Lab, backend: FakeBackend) -> None:
    incident = lab.rebooting("node2")
    assert lab.client.post("/v1/nodes/node2/resume").status_code == 200
    step = lab.step_after_tick(incident)
    assert step["status"] == "stopped" and "resolved" in step["outcome"]


def test_the_ladder_does_nothing_unless_enabled(
    store: Store, slurm: Slurm, clock: FakeClock, lab: Lab, backend: FakeBackend, cfg: Config
) -> None:
    assert cfg.recovery.enabled is True  # on by default
    off = Ladder(store, slurm, RecoveryConfig(enabled=False), clock)
    incident = lab.fault("node2")
    off.run_once([])
    lab.executor.run_due()
    assert backend.writes("reboot") == [] and lab.recovery(incident) == []


@pytest.fixture
def webhook() -> Iterator[Answering]:
    up = Answering(200, {})
    yield up
    up.close()


def replace_lab(lab: Lab, store: Store, slurm: Slurm, clock: FakeClock, cfg: RecoveryConfig) -> Lab:
    """``lab`` with an executor and a ladder that know the replace hook ``cfg``."""
    executor = Executor(store, slurm, PolicyConfig(), clock=clock, recovery=cfg)
    ladder = Ladder(store, slurm, cfg, clock, wake=executor.wake)
    return Lab(lab.client, executor, lab.reconciler, ladder, lab.backend)


def second_xid79(lab: Lab) -> int:
    """XID 79 on node2's GPU 3, the node resumed, then XID 79 on the same GPU again:
    the policy climbs to *replace*. The second incident."""
    lab.fault("node2")
    assert lab.client.post("/v1/nodes/node2/resume").status_code == 200
    incident = lab.fault("node2")
    action = lab.client.get(f"/v1/incidents/{incident}").json()["action"]
    assert action == "replace"
    return incident


def test_a_gpu_that_failed_again_is_marked_for_replacement_and_the_hook_runs(
    lab: Lab,
    store: Store,
    slurm: Slurm,
    clock: FakeClock,
    backend: FakeBackend,
    webhook: Answering,
    tmp_path: Path,
) -> None:
    got = tmp_path / "incident.json"
    cfg = RecoveryConfig(
        enabled=True,
        replace_command=("sh", "-c", f"cat > {got}"),
        replace_webhook_url=webhook.url,
    )
    lab = replace_lab(lab, store, slurm, clock, cfg)
    incident = second_xid79(lab)
    lab.tick()
    lab.tick()
    [step] = lab.recovery(incident)
    assert (step["rung"], step["status"]) == ("replace", "passed")
    assert "the replace hook ran" in step["outcome"] and "nothing resumes it" in step["why"]
    node = backend.nodes_by_name["node2"]
    assert (
        node.drained and node.reason == f"hpresil: #{incident} replace gpu_lost_pcie xid 79 gpu 3"
    )
    told = json.loads(got.read_text())
    assert (told["id"], told["node"], told["action"]) == (incident, "node2", "replace")
    assert told["gpu"]["serial"] == "1650000003"
    (posted,) = webhook.seen
    event = json.loads(posted.body)
    assert event["event"] == "node_replace" and event["incident"]["id"] == incident
    assert backend.writes("reboot") == []  # a GPU to replace is never rebooted back


def test_a_failing_replace_hook_is_tried_again(
    lab: Lab, store: Store, slurm: Slurm, clock: FakeClock, tmp_path: Path
) -> None:
    flag = tmp_path / "ticketing-up"
    cfg = RecoveryConfig(enabled=True, replace_command=("sh", "-c", f"test -e {flag}"))
    lab = replace_lab(lab, store, slurm, clock, cfg)
    incident = second_xid79(lab)
    lab.tick()
    replace = [a for a in lab.client.get(f"/v1/incidents/{incident}").json()["actions"]]
    (action,) = [a for a in replace if a["kind"] == "replace"]
    assert action["status"] == "pending" and "replace command" in action["error"]
    assert lab.recovery(incident)[0]["status"] == "running"
    flag.touch()
    clock.advance(60)  # past the back-off
    lab.tick()
    lab.tick()
    assert lab.recovery(incident)[0]["status"] == "passed"


def test_a_held_node_is_left_alone_until_released(lab: Lab, backend: FakeBackend) -> None:
    held = lab.client.post("/v1/nodes/node2/hold", json={"why": "bob: reseating GPU 3"})
    assert held.status_code == 200
    assert (held.json()["held_by"], held.json()["why"]) == (
        "operator (token)",
        "bob: reseating GPU 3",
    )
    incident = lab.rebooting("node2")
    lab.tick()
    assert backend.writes("reboot") == [] and lab.recovery(incident) == []
    listed = {n["name"]: n["held_by"] for n in lab.client.get("/v1/nodes").json()}
    assert listed == {"node1": None, "node2": "operator (token)", "node3": None}
    released = lab.client.post("/v1/nodes/node2/release")
    assert released.status_code == 200 and released.json()["held_by"] is None
    lab.tick()
    assert [c[1] for c in backend.writes("reboot")] == ["node2"]


def test_a_hold_stops_the_step_under_way(lab: Lab, backend: FakeBackend) -> None:
    incident = lab.rebooting("node2")
    lab.client.post("/v1/nodes/node2/hold", json={"why": "bob: on it"})
    step = lab.step_after_tick(incident)
    assert step["status"] == "stopped"
    assert step["outcome"] == "an operator holds the node: operator (token): bob: on it"


def test_hold_and_release_refuse_what_they_cannot_do(lab: Lab, store: Store) -> None:
    not_held = lab.client.post("/v1/nodes/node2/release")
    assert not_held.status_code == 409 and "node node2 is not held" in not_held.text
    no_why = lab.client.post("/v1/nodes/node2/hold", json={})
    assert no_why.status_code == 422 and "why" in no_why.text
    unknown = lab.client.post("/v1/nodes/node9/hold", json={"why": "x"})
    assert unknown.status_code == 404 and "node9" in unknown.text
