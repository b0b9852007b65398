"""The spine end to end on real Slurm: fault -> drain -> requeue -> resume -> ledger."""

from __future__ import annotations

from typing import Any

from lab import Lab
from scenario import (
    hpresil,
    hpresil_json,
    inject_and_measure,
    job_field,
    node_state,
    submit_training,
    wait_for,
    wait_running,
)

from hpresil.ckpt import latest


def test_xid79_drains_requeues_resumes_and_is_recorded(clean_lab: Lab) -> None:
    lab = clean_lab
    earlier = _failures(lab)  # the ledger of the tests that ran before this one
    job = submit_training(lab, name="it-loop")
    node = wait_running(lab, job, min_step=12)
    newest = latest(job.ckpt_dir)
    assert newest is not None and newest.step is not None
    newest_ckpt = newest.step

    result = inject_and_measure(lab, job, fault="xid79", gpu=3, timeout=90)

    # Slurm: the faulty node is drained with hpresil's reason, the job runs elsewhere.
    state, reason = node_state(lab, node)
    assert "DRAIN" in state
    assert reason.startswith("hpresil:") and "xid 79" in reason
    assert result.drained_node == node
    assert result.resumed_node != node
    assert job_field(lab, job.job_id, "BatchHost") == result.resumed_node
    assert int(job_field(lab, job.job_id, "Restarts")) == 1
    # The job resumed from its newest checkpoint, not from step 0.
    assert result.resumed_from_step is not None
    assert result.resumed_from_step >= newest_ckpt >= 10
    assert (
        result.steps_lost is not None and result.steps_lost < 5 + 10
    )  # at most one checkpoint interval plus the kill delay

    # The ledger: category, XID, GPU identity, affected job, actions with reasons.
    incident: Any = hpresil_json(lab, "incidents", str(result.incident))
    assert incident["node"] == node and incident["status"] == "open"
    assert incident["category"] == "gpu_lost_pcie" and incident["xid"] == 79
    assert incident["gpu"]["index"] == 3 and incident["gpu"]["uuid"].startswith("GPU-")
    assert incident["drained_at"] is not None
    (affected,) = incident["jobs"]
    assert affected["job_id"] == job.job_id and affected["requeue_outcome"] == "requeued"
    wait_for(
        "the controller to see the job running again",
        lambda: hpresil_json(lab, "incidents", str(result.incident))["jobs"][0]["restarted_at"],  # type: ignore[index]
        timeout=15,
        every=0.5,
    )
    restarted: Any = hpresil_json(lab, "incidents", str(result.incident))
    assert restarted["jobs"][0]["restarted_node"] == result.resumed_node
    kinds = [(a["kind"], a["status"]) for a in incident["actions"]]
    assert ("drain", "done") in kinds and ("requeue", "done") in kinds
    assert all(a["why"] for a in incident["actions"])

    # Status shows the node failing with its open incident.
    rows: Any = hpresil_json(lab, "status")
    row = next(r for r in rows if r["name"] == node)
    assert row["health"] == "fail" and row["open_incident"] == result.incident
    assert row["drained_by_hpresil"] is True

    # Return to service closes the incident; MTTF and MTTR come from the ledger.
    assert "resumed" in hpresil(lab, "resume", node)
    wait_for("node back in service", lambda: "DRAIN" not in node_state(lab, node)[0], 10)
    closed: Any = hpresil_json(lab, "incidents", str(result.incident))
    assert closed["status"] == "resolved" and closed["resolved_at"] is not None
    mttf: Any = hpresil_json(lab, "stats", "mttf", "--by", "node")
    by_node = {r["key"]: r for r in mttf["rows"]}
    assert by_node[node]["mttr_h"] is not None
    assert _failures(lab) == {n: earlier[n] + (n == node) for n in lab.node_names}  # one more
    assert mttf["total"]["nodes"] == len(lab.node_names)  # censored: healthy nodes count


def _failures(lab: Lab) -> dict[str, int]:
    """Hardware failures per node in the ledger's MTTF."""
    mttf: Any = hpresil_json(lab, "stats", "mttf", "--by", "node")
    found = {r["key"]: int(r["failures"]) for r in mttf["rows"]}
    return {n: found.get(n, 0) for n in lab.node_names}
