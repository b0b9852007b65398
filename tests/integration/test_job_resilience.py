"""Job resilience on the real Slurm lab: resume from the newest complete checkpoint,
skip a half-written one, fence a requeued job's old instance, hold a job past its
restart budget, requeue a hung job.

The stand-in job (scripts/lab-jobs/train.py) writes real framework layouts through
hpresil's job helper; the TaskProlog exports where to resume."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab import Lab
from scenario import (
    TrainingJob,
    api_get,
    controller_with,
    dropin_path,
    hpresil_json,
    inject,
    inject_and_measure,
    job_field,
    submit_training,
    wait_for,
    wait_running,
)

from hpresil.adapters.slurm.hostlist import expand
from hpresil.ckpt import latest, manifest, scan
from hpresil.ckpt.lease import Lease
from tests.webhook import Webhook


@pytest.fixture(scope="module")
def webhook(lab: Lab) -> Iterator[Webhook]:
    """The controller posts to a local webhook and requeues hung jobs 3 s after the
    signal (a drop-in, as a site would configure it), for this module's tests."""
    hook = Webhook()
    try:
        text = f'[jobs]\nwebhook_url = "{hook.url}"\nhang_grace_s = 3.0\n'
        with controller_with(lab, "50-it-jobs.toml", text):
            yield hook
    finally:
        hook.close()


def ckpt_lines(job: TrainingJob, before: float | None = None) -> list[int]:
    """Steps of the checkpoints the job reported complete (before ``before``)."""
    return [
        int(rest.split()[0])
        for t, kind, rest in job.events()
        if kind == "ckpt" and (before is None or t < before)
    ]


def ledger(lab: Lab, job: TrainingJob) -> dict[str, Any]:
    found = api_get(lab, f"/v1/jobs/{job.job_id}")
    assert isinstance(found, dict)
    return found


@pytest.mark.parametrize(("fmt", "name"), [("hf", "checkpoint-{}"), ("deepspeed", "global_step{}")])
def test_a_faulted_job_resumes_at_its_newest_complete_checkpoint_on_another_node(
    clean_lab: Lab, fmt: str, name: str
) -> None:
    lab = clean_lab
    job = submit_training(lab, name=f"it-{fmt}", fmt=fmt, every=4)
    node = wait_running(lab, job, min_step=10)
    first = job.starts()[0][1]
    assert first["resumed_from"] == "0" and first["path"] == "-"  # a first run: nothing exported
    wait_for("the agent to report its checkpoint", lambda: ledger(lab, job)["checkpoint"], 20, 0.5)

    result = inject_and_measure(lab, job, fault="xid79", gpu=3, timeout=90)

    t_resume, info = job.starts()[-1]
    newest = max(ckpt_lines(job, before=t_resume))
    assert result.resumed_node != node
    assert result.resumed_from_step == newest  # the exact step of the newest complete one
    assert info["path"] == str(job.ckpt_dir / name.format(newest))
    assert info["restart"] == "1"

    def interruption() -> dict[str, Any] | None:
        stops = ledger(lab, job)["interruptions"]
        return stops[0] if stops and stops[0]["resumed_at"] else None

    stop: Any = wait_for("the ledger to see the job resumed", interruption, 20, 0.5)
    assert stop["node"] == node and stop["resumed_node"] == result.resumed_node
    # the ledger's newest checkpoint is the agent's last look (every jobs.observe_s)
    assert stop["checkpoint_step"] in ckpt_lines(job, before=t_resume)
    assert stop["lost_s"] is not None and stop["lost_s"] >= 0
    assert node in expand(job_field(lab, job.job_id, "ExcNodeList"))  # kept off the bad node


def test_a_half_written_newest_checkpoint_is_skipped(clean_lab: Lab) -> None:
    lab = clean_lab
    job = submit_training(lab, name="it-half", fmt="hf", every=4, extra=("--half-at", "12"))
    wait_for("the job to die half way through a save", lambda: "half" in _kinds(job), 60, 0.2)
    assert ckpt_lines(job) == [4, 8]
    # listed before the fault: the resumed job soon writes a whole checkpoint-12 of its own
    listed: Any = hpresil_json(lab, "checkpoint", "list", str(job.ckpt_dir))
    half = next(c for c in listed if c["path"].endswith("checkpoint-12"))
    assert half["complete"] is False and half["reason"]

    result = inject_and_measure(lab, job, fault="xid79", gpu=3, timeout=90)

    assert result.resumed_from_step == 8


def test_a_requeued_jobs_old_instance_cannot_corrupt_the_new_ones_checkpoints(
    clean_lab: Lab,
) -> None:
    """slurmd dies; Slurm requeues the job elsewhere, but the old instance (its
    slurmstepd survives) keeps running and writing. The agents' orphan reaper is off
    here, so only the lease stands between them."""
    lab = clean_lab
    no_reaper = dropin_path(lab, "50-it-no-reaper.toml")
    no_reaper.write_text("[jobs]\nkill_orphans = false\n")
    for n in lab.node_names:
        lab.stop_process(f"agent.{n}")
        lab.start_agent(n)
    try:
        job = submit_training(lab, name="it-fence", fmt="hf", every=4, step_s=0.5)
        node = wait_running(lab, job, min_step=6)
        os.kill(int((lab.run_dir / f"slurmd.{node}.pid").read_text()), signal.SIGKILL)

        wait_for("the job to run again elsewhere", lambda: len(job.starts()) > 1, 150, 0.5)
        t_new, info = job.starts()[-1]
        assert info["node"] != node and info["restart"] == "1"
        wait_for("the old instance to be fenced", lambda: "fenced" in _kinds(job), 60, 0.5)
        wait_for("the new instance to checkpoint twice", lambda: _ckpts_after(job, t_new) >= 2, 60)
    finally:
        no_reaper.unlink(missing_ok=True)
        for n in lab.node_names:
            lab.stop_process(f"agent.{n}")
        lab.up()  # slurmd back on the node
        for n in lab.node_names:
            lab.start_agent(n)

    lease = Lease.read(job.ckpt_dir)
    assert lease is not None and lease.generation == 1 and lease.job_id == job.job_id
    resumed_from = Path(info["path"])
    assert manifest.verify(resumed_from) is None  # what the new one read is whole
    assert (resumed_from / manifest.MANIFEST_NAME).stat().st_mtime <= lease.taken_at
    for found in scan(job.ckpt_dir):
        body = (
            json.loads((found.path / manifest.MANIFEST_NAME).read_text()) if found.complete else {}
        )
        if found.complete and body.get("written_at", 0) > lease.taken_at:
            assert body["lease"]["generation"] == 1, found  # nothing old committed since
    newest = latest(job.ckpt_dir)
    assert (
        newest is not None and newest.step is not None and newest.step > int(info["resumed_from"])
    )


def test_a_job_past_its_restart_budget_is_held_and_its_owner_told(
    clean_lab: Lab, webhook: Webhook
) -> None:
    lab = clean_lab
    job = submit_training(lab, name="it-budget", every=4, comment="budget=1")
    wait_running(lab, job, min_step=6)
    inject_and_measure(lab, job, fault="xid79", gpu=3, timeout=90)  # restart 1 of 1
    node = wait_running(lab, job, min_step=int(job.starts()[-1][1]["resumed_from"]) + 2)

    inject(lab, node, "xid79", 3)

    def held() -> bool:
        # scontrol says "job_requeued_in_held_state", squeue "JobHeldUser"
        return "held" in job_field(lab, job.job_id, "Reason").lower()

    wait_for("the job to be held", held, 60, 0.5)

    def pending() -> bool:  # requeued held: COMPLETING while its steps are killed
        return job_field(lab, job.job_id, "JobState") == "PENDING"

    wait_for("the held job to be pending", pending, 30, 0.5)
    wait_for(
        "the webhook",
        lambda: any(e["job_id"] == job.job_id and e["event"] == "job_held" for e in webhook.events),
        20,
    )
    event = next(
        e for e in webhook.events if e["job_id"] == job.job_id and e["event"] == "job_held"
    )
    assert event["event"] == "job_held" and "restart budget (1 of 1)" in event["why"]
    view = ledger(lab, job)
    assert view["status"] == "held" and view["restarts"] >= 1


def test_a_hung_job_is_signalled_then_requeued_as_a_job_incident(
    clean_lab: Lab, webhook: Webhook
) -> None:
    lab = clean_lab
    before: Any = api_get(lab, "/v1/stats/mttf")
    job = submit_training(lab, name="it-hang", every=4, comment="hang=6", extra=("--hang-at", "10"))
    node = wait_running(lab, job, min_step=10)
    wait_for("the hang signal", lambda: "signal" in _kinds(job), 60, 0.5)
    wait_for("the job to run again", lambda: len(job.starts()) > 1, 60, 0.5)

    _, info = job.starts()[-1]
    assert info["resumed_from"] == "8" and info["restart"] == "1"
    incidents: Any = api_get(lab, "/v1/incidents")
    (hang,) = [i for i in incidents if i["category"] == "job_hang" and i["job_id"] == job.job_id]
    assert hang["node"] == node and hang["hardware"] is False
    kinds = {(a["kind"], a["status"]) for a in hang["actions"]}
    assert ("signal", "done") in kinds and ("requeue", "done") in kinds
    after: Any = api_get(lab, "/v1/stats/mttf")
    assert after["total"]["failures"] == before["total"]["failures"]
    assert any(e["event"] == "job_hung" and e["job_id"] == job.job_id for e in webhook.events)


def test_a_job_holding_idle_gpus_is_listed_and_its_owner_told(
    clean_lab: Lab, webhook: Webhook
) -> None:
    """The lab's GPUs (the NVML double's) idle at 0 %, as GPUs a job holds and never
    uses."""
    lab = clean_lab
    idle_conf = dropin_path(lab, "60-it-idle.toml")
    idle_conf.write_text('[jobs.idle]\nwindow_s = 4.0\naction = "notify"\n')
    lab.stop_process("controller")
    lab.start_controller()
    try:
        job = submit_training(lab, name="it-idle")
        node = wait_running(lab, job, min_step=2)
        wait_for("the job listed idle", lambda: job.job_id in _idle(lab), 40, 0.5)
        wait_for(
            "the idle notice",
            lambda: any(
                e["job_id"] == job.job_id and e["event"] == "job_idle" for e in webhook.events
            ),
            20,
            0.5,
        )
        for gpu in range(8):
            lab.inject_gpu(node, gpu, utilization_pct=85)
        wait_for("the job busy again", lambda: job.job_id not in _idle(lab), 40, 0.5)
        view = ledger(lab, job)
        assert view["gpus"] == 8 and view["gpu_util_pct"] == 85.0 and view["idle_since"] is None
    finally:
        idle_conf.unlink(missing_ok=True)
        lab.stop_process("controller")
        lab.start_controller()


def _idle(lab: Lab) -> list[int]:
    listed: Any = hpresil_json(lab, "jobs", "--idle")
    return [j["job_id"] for j in listed]


def _kinds(job: TrainingJob) -> set[str]:
    return {kind for _, kind, _ in job.events()}


def _ckpts_after(job: TrainingJob, t: float) -> int:
    return sum(1 for when, kind, _ in job.events() if kind == "ckpt" and when > t)
