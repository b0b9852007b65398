"""A GPU fault while slurmctld is stopped (issue 9, defect 1): Slurm's clients answer
"exit 0, errors array" for about 9 s a call; the drain waits, retried, and once
slurmctld is back the node is drained once and its job requeued once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab import Lab
from scenario import (
    api_get,
    hpresil,
    incidents_after,
    job_field,
    newest_incident_id,
    node_state,
    submit_training,
    wait_for,
    wait_running,
)


def _detail(lab: Lab, incident_id: int) -> dict[str, Any]:
    found: Any = api_get(lab, f"/v1/incidents/{incident_id}")
    return dict(found)


def _since(log: Path, offset: int) -> str:
    with log.open() as f:
        f.seek(offset)
        return f.read()


def _drains(lab: Lab, incident_id: int) -> list[dict[str, Any]]:
    return [a for a in _detail(lab, incident_id)["actions"] if a["kind"] == "drain"]


def test_xid79_while_slurmctld_is_stopped_drains_and_requeues_once_it_is_back(
    clean_lab: Lab,
) -> None:
    lab = clean_lab
    job = submit_training(lab, name="it-ctld-down")
    node = wait_running(lab, job, min_step=3)
    before = newest_incident_id(lab)
    log = lab.log_dir / "controller.log"
    start = log.stat().st_size

    lab.stop_process("slurmctld")
    try:
        hpresil(lab, "inject", "xid", "79", "--gpu", "3", "--node", node, env=lab.node_env(node))
        found = wait_for("the incident", lambda: incidents_after(lab, node, before), 20, 0.2)
        assert isinstance(found, list)
        incident_id = found[0]["id"]

        def failed_once() -> bool:  # each try: 4 calls of scontrol show node, each failing
            drains = _drains(lab, incident_id)
            return bool(drains) and drains[0]["attempts"] >= 1

        wait_for("a drain attempt to fail while slurmctld is down", failed_once, 90, 1.0)
        (drain,) = _drains(lab, incident_id)
        assert drain["status"] == "pending"  # not given up
        # the drain reads its node alone: scontrol show node -o node1
        assert "Unable to contact slurm controller" in (drain["error"] or "")
        # the reconcile loop says so in one line (its pass asks squeue, then sinfo)
        wait_for("the reconcile loop's line", lambda: "slurm did not" in _since(log, start), 90, 1)
    finally:
        lab.up()  # slurmctld back, its state recovered from StateSaveLocation

    wait_for("the drain", lambda: "DRAIN" in node_state(lab, node)[0], 120, 1.0)
    assert node_state(lab, node)[1].startswith("hpresil:")
    wait_for("the requeue", lambda: job_field(lab, job.job_id, "Restarts") == "1", 60, 0.5)
    new_node = wait_running(lab, job, min_step=1, timeout=90)
    assert new_node != node

    assert len(incidents_after(lab, node, before)) == 1
    detail = _detail(lab, incident_id)
    done = [a for a in detail["actions"] if a["kind"] == "drain" and a["status"] == "done"]
    assert len(done) == 1 and done[0]["outcome"] in ("drained", "already_ours")
    requeues = [a for a in detail["actions"] if a["kind"] == "requeue"]
    assert [(a["target"], a["status"], a["outcome"]) for a in requeues] == [
        (str(job.job_id), "done", "requeued")
    ]
    (affected,) = detail["jobs"]
    assert affected["job_id"] == job.job_id and affected["requeue_outcome"] == "requeued"
    assert job_field(lab, job.job_id, "Restarts") == "1"
    assert "Traceback" not in _since(log, start)
