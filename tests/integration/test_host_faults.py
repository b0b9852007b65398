"""Host-side faults in the lab end as the policy says."""

from __future__ import annotations

from typing import Any

from lab import Lab
from scenario import (
    api_get,
    job_field,
    node_state,
    submit_training,
    wait_for,
    wait_running,
)


def test_ib_port_down_drains_but_lets_the_job_finish(clean_lab: Lab) -> None:
    lab = clean_lab
    job = submit_training(lab, name="it-ib")
    node = wait_running(lab, job, min_step=2)
    lab.inject_ib(node, "mlx5_3/1", up=False)

    def incident() -> Any:
        found: Any = api_get(lab, f"/v1/incidents?status=open&node={node}")
        return found[0] if found else None

    opened = wait_for("the IB incident", incident, 20, 0.2)
    assert opened["category"] == "ib_network" and opened["action"] == "drain"
    wait_for("the drain", lambda: "DRAIN" in node_state(lab, node)[0], 10, 0.2)
    assert node_state(lab, node)[1].startswith(f"hpresil: #{opened['id']} ib_network")
    # policy "drain": running jobs may finish; nothing is requeued
    assert job_field(lab, job.job_id, "JobState") == "RUNNING"
    assert job_field(lab, job.job_id, "BatchHost") == node
    assert int(job_field(lab, job.job_id, "Restarts")) == 0
    detail: Any = api_get(lab, f"/v1/incidents/{opened['id']}")
    assert detail["jobs"] == [] and not [a for a in detail["actions"] if a["kind"] == "requeue"]


def _open_incident(lab: Lab, node: str) -> Any:
    found: Any = api_get(lab, f"/v1/incidents?status=open&node={node}")
    return found[0] if found else None


def test_row_remap_failure_drains_now_and_requeues_the_job(clean_lab: Lab) -> None:
    lab = clean_lab
    job = submit_training(lab, name="it-remap")
    node = wait_running(lab, job, min_step=2)
    lab.inject_gpu(node, 6, row_remap_failure=True)
    opened = wait_for("the incident", lambda: _open_incident(lab, node), 20, 0.2)
    assert opened["category"] == "hbm_ecc" and opened["gpu"]["index"] == 6
    assert opened["action"] == "reset_gpu"  # drain now, requeue, reset the GPU
    wait_for("the requeue", lambda: int(job_field(lab, job.job_id, "Restarts")) == 1, 20, 0.2)
    assert "DRAIN" in node_state(lab, node)[0]


def test_nvlink_down_drains_and_lets_the_job_finish(clean_lab: Lab) -> None:
    lab = clean_lab
    job = submit_training(lab, name="it-nvlink")
    node = wait_running(lab, job, min_step=2)
    lab.inject_gpu(node, 1, nvlink_down=[4])
    opened = wait_for("the incident", lambda: _open_incident(lab, node), 20, 0.2)
    assert opened["category"] == "nvlink_nvswitch" and opened["action"] == "drain"
    wait_for("the drain", lambda: "DRAIN" in node_state(lab, node)[0], 10, 0.2)
    assert int(job_field(lab, job.job_id, "Restarts")) == 0
    assert job_field(lab, job.job_id, "JobState") == "RUNNING"
