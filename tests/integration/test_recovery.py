"""The recovery ladder on real Slurm and real agents: a drained node is brought back
to service by a GPU reset (the agent runs the lab's stand-in nvidia-smi) or a reboot
through ``scontrol reboot ASAP nextstate=DOWN`` (the lab's RebootProgram restarts the
node's slurmd with -b, as a reboot does), then the agent's burn-in (the product's
runners against the lab's stand-in gpu_burn, all_reduce_perf and dcgmi, failing what
the node's GPU state says is broken), then a resume; each step in the incident's
ledger. A refused reset climbs to a reboot; a failed burn-in to replace, whose hook
gets the incident. A node someone else drained, or an operator holds, is left alone;
a node with a running job is not rebooted until the job is gone."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from lab import Lab
from scenario import (
    api_get,
    controller_with,
    hpresil,
    in_service,
    incidents_after,
    node_state,
    wait_for,
)

from tests.integration.faultkit import drained_once, evidence, quiet

RECOVERY = "[recovery]\nenabled = true\n"


def xid79(lab: Lab, node: str, gpu: int) -> None:
    """XID 79 on a GPU no other lab test faults with it: an earlier fault of the same
    category on the same GPU would make the policy climb its ladder (to replace)."""
    argv = ["inject", "xid", "79", "--gpu", str(gpu), "--node", node]
    hpresil(lab, *argv, env=lab.node_env(node))


def xid(lab: Lab, node: str, number: int, gpu: int) -> None:
    argv = ["inject", "xid", str(number), "--gpu", str(gpu), "--node", node]
    hpresil(lab, *argv, env=lab.node_env(node))


def replace_hook(lab: Lab, name: str) -> tuple[Path, str]:
    """A replace hook that writes the incident it is given to ``name`` (gone now), and
    the configuration that sets it."""
    told = lab.root / name
    told.unlink(missing_ok=True)
    return told, f'replace_command = ["sh", "-c", "cat > {told}"]\n'


def steps(lab: Lab, incident: int) -> list[dict[str, Any]]:
    found: Any = api_get(lab, f"/v1/incidents/{incident}")
    return list(found["recovery"])


def rungs(lab: Lab, incident: int) -> list[tuple[str, str]]:
    return [(s["rung"], s["status"]) for s in steps(lab, incident)]


def on_rung(lab: Lab, incident: int, rung: str, status: str = "running") -> list[dict[str, Any]]:
    """The incident's steps once its newest is ``rung`` in ``status``; else none."""
    found = steps(lab, incident)
    return found if found and (found[-1]["rung"], found[-1]["status"]) == (rung, status) else []


def job_state(lab: Lab, job: str) -> str:
    return lab.slurm(["squeue", "-h", "-j", job, "-o", "%T"]).stdout.strip()


def drains_ended(lab: Lab, incident: int) -> bool:
    found: Any = api_get(lab, f"/v1/incidents/{incident}")
    return any(a["kind"] == "drain" and a["status"] != "pending" for a in found["actions"])


def boot_seconds(stamp: str) -> float:
    """Slurm's BootTime in seconds (it is now less uptime at each registration: a
    second either way from one registration to the next)."""
    return datetime.fromisoformat(stamp).timestamp()


def boot_time(lab: Lab, node: str) -> str:
    out = lab.slurm(["scontrol", "-o", "show", "node", node]).stdout
    return out.split("BootTime=", 1)[1].split()[0]


def test_a_reboot_through_slurm_then_a_burn_in_returns_the_node_to_service(
    clean_lab: Lab,
) -> None:
    lab, node = clean_lab, "node4"
    before = quiet(lab, node)
    booted = boot_time(lab, node)
    with controller_with(lab, "60-it-recovery.toml", RECOVERY), evidence(lab, node):
        xid79(lab, node, gpu=7)
        drained_once(lab, node, before)
        (incident,) = (i["id"] for i in incidents_after(lab, node, before))

        found = wait_for("the burn-in", lambda: on_rung(lab, incident, "burnin"), 60, 0.2)
        reboot = cast(list[dict[str, Any]], found)[0]
        assert (reboot["rung"], reboot["status"]) == ("reboot", "passed"), reboot
        assert "policy: reboot" in reboot["why"]
        state, reason = node_state(lab, node)  # rebooted, under its burn-in
        assert state == "DOWN"  # Slurm starts no job on it
        assert reason.startswith("hpresil: #") and "xid 79" in reason  # still hpresil's
        assert reason.endswith(": reboot issued : reboot complete")
        new_boot = boot_seconds(boot_time(lab, node))
        assert new_boot > boot_seconds(booted) + 5 and new_boot > time.time() - 120

        wait_for("the incident resolved", lambda: resolved(lab, incident), 90, 0.5)
        assert rungs(lab, incident) == [
            ("reboot", "passed"),
            ("burnin", "passed"),
            ("resume", "passed"),
        ]
        burnin = steps(lab, incident)[1]["outcome"]
        assert "burnin_gpu_burn" in burnin and "burnin_nccl" in burnin, burnin
        wait_for("the node in service", lambda: in_service(lab, node), 60, 0.5)
        detail: Any = api_get(lab, f"/v1/incidents/{incident}")
        kinds = [(a["kind"], a["status"], a["outcome"]) for a in detail["actions"]]
        assert ("reboot", "done", "requested") in kinds and ("resume", "done", "resumed") in kinds


def test_a_gpu_reset_clears_it_without_a_reboot(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node1"
    before = quiet(lab, node)
    booted = boot_time(lab, node)
    with controller_with(lab, "60-it-recovery.toml", RECOVERY), evidence(lab, node):
        xid(lab, node, 119, gpu=4)  # GSP RPC timeout: a reset
        (incident,) = wait_for("the incident", lambda: newer(lab, node, before), 30, 0.2)
        wait_for("the incident resolved", lambda: resolved(lab, incident), 90, 0.5)
        assert rungs(lab, incident) == [
            ("reset_gpu", "passed"),
            ("burnin", "passed"),
            ("resume", "passed"),
        ]
        reset = steps(lab, incident)[0]["outcome"]
        assert "was successfully reset" in reset, reset  # nvidia-smi's own words
        wait_for("the node in service", lambda: in_service(lab, node), 60, 0.5)
        assert abs(boot_seconds(boot_time(lab, node)) - boot_seconds(booted)) < 5  # no reboot


def test_a_refused_reset_climbs_to_a_reboot(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node3"
    before = quiet(lab, node)
    lab.refuse_resets(node)  # a fabric manager holds the GPUs
    with controller_with(lab, "60-it-recovery.toml", RECOVERY), evidence(lab, node):
        xid(lab, node, 119, gpu=4)
        (incident,) = wait_for("the incident", lambda: newer(lab, node, before), 30, 0.2)
        wait_for("the incident resolved", lambda: resolved(lab, incident), 120, 0.5)
        assert rungs(lab, incident) == [
            ("reset_gpu", "failed"),
            ("reboot", "passed"),
            ("burnin", "passed"),
            ("resume", "passed"),
        ]
        reset = steps(lab, incident)[0]["outcome"]
        assert reset.startswith("reset refused:") and "In use by another client" in reset, reset


def test_a_gpu_that_fails_its_burn_in_goes_to_replace_and_the_hook_gets_the_incident(
    clean_lab: Lab,
) -> None:
    lab, node = clean_lab, "node4"
    told, hook = replace_hook(lab, "replace-hook-burnin.json")
    before = quiet(lab, node)
    lab.break_gpu(node, 4)  # no reboot mends it; NVML still sees it healthy
    with controller_with(lab, "60-it-recovery.toml", RECOVERY + hook), evidence(lab, node):
        xid79(lab, node, gpu=4)
        drained_once(lab, node, before)
        (incident,) = (i["id"] for i in incidents_after(lab, node, before))
        wait_for("the replace step", lambda: on_rung(lab, incident, "replace", "passed"), 120, 0.5)
        assert rungs(lab, incident) == [
            ("reboot", "passed"),
            ("burnin", "failed"),
            ("replace", "passed"),
        ]
        assert "GPU 4" in steps(lab, incident)[1]["outcome"]
        told_of: Any = json.loads(told.read_text())
        assert (told_of["id"], told_of["node"]) == (incident, node)
        assert [s["rung"] for s in told_of["recovery"]][:2] == ["reboot", "burnin"]
        state, reason = node_state(lab, node)
        assert "IDLE" not in state and reason.startswith(f"hpresil: #{incident} replace ")
        time.sleep(3)  # reconcile passes: nothing resumes it
        assert resolved(lab, incident) is False


def test_a_node_with_a_running_job_is_not_rebooted_until_the_job_is_gone(
    clean_lab: Lab,
) -> None:
    lab, node = clean_lab, "node1"
    before = quiet(lab, node)
    with controller_with(lab, "60-it-recovery.toml", RECOVERY), evidence(lab, node):
        job = lab.slurm(
            ["sbatch", "--parsable", "--no-requeue", "-w", node, "-p", "gpu", "--wrap=sleep 300"]
        ).stdout.strip()
        wait_for("the job running", lambda: job_state(lab, job) == "RUNNING", 30, 0.2)
        xid79(lab, node, gpu=6)
        (incident,) = wait_for("the incident", lambda: newer(lab, node, before), 30, 0.2)
        wait_for("the drain", lambda: "DRAIN" in node_state(lab, node)[0], 30, 0.2)
        time.sleep(4)  # reconcile passes (1 s apart here) in which a reboot would start
        assert job_state(lab, job) == "RUNNING"  # not requeueable: it runs on
        assert steps(lab, incident) == [] and "REBOOT" not in node_state(lab, node)[0]
        lab.slurm(["scancel", job])
        wait_for("the reboot", lambda: on_rung(lab, incident, "reboot"), 60, 0.5)
        wait_for("the incident resolved", lambda: resolved(lab, incident), 120, 0.5)
        assert [r for r, _ in rungs(lab, incident)] == ["reboot", "burnin", "resume"]


def test_a_node_someone_else_drained_is_not_rebooted(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node3"
    before = quiet(lab, node)
    booted = boot_time(lab, node)
    with controller_with(lab, "60-it-recovery.toml", RECOVERY), evidence(lab, node):
        update = ["scontrol", "update", f"nodename={node}", "state=drain"]
        lab.slurm([*update, "reason=bob: swapping a riser"])
        xid79(lab, node, gpu=6)
        (incident,) = wait_for(
            "the incident", lambda: [i["id"] for i in incidents_after(lab, node, before)], 30, 0.2
        )
        wait_for("its drain (skipped: not hpresil's node)", lambda: drains_ended(lab, incident), 30)
        time.sleep(4)  # reconcile passes (1 s apart here) in which a reboot would start
        assert steps(lab, incident) == []
        state, reason = node_state(lab, node)
        assert "DRAIN" in state and "REBOOT" not in state and reason == "bob: swapping a riser"
        assert abs(boot_seconds(boot_time(lab, node)) - boot_seconds(booted)) < 5  # not rebooted


def test_a_gpu_that_falls_off_the_bus_again_is_marked_for_replacement_and_the_hook_runs(
    clean_lab: Lab,
) -> None:
    lab, node = clean_lab, "node2"
    told, hook = replace_hook(lab, "replace-hook.json")
    before = quiet(lab, node)
    with controller_with(lab, "60-it-recovery.toml", RECOVERY + hook), evidence(lab, node):
        xid79(lab, node, gpu=5)  # the first time: rebooted, burnt in, back in service
        drained_once(lab, node, before)
        (first,) = (i["id"] for i in incidents_after(lab, node, before))
        wait_for("the first incident resolved", lambda: resolved(lab, first), 120, 0.5)
        wait_for("the node in service", lambda: in_service(lab, node), 60, 0.5)

        xid79(lab, node, gpu=5)  # the same GPU again: the policy climbs to replace
        (second,) = wait_for("the second incident", lambda: newer(lab, node, first), 30, 0.2)
        found = wait_for("the replace step to end", lambda: ended(lab, second), 60, 0.5)
        step = cast(list[dict[str, Any]], found)[0]
        assert (step["rung"], step["status"]) == ("replace", "passed"), step
        incident: Any = json.loads(told.read_text())
        assert (incident["id"], incident["node"], incident["action"]) == (second, node, "replace")
        assert incident["xid"] == 79 and incident["gpu"]["index"] == 5
        state, reason = node_state(lab, node)
        assert "DRAIN" in state and reason.startswith(f"hpresil: #{second} replace ")
        kinds = [s["rung"] for s in steps(lab, second)]
        assert kinds == ["replace"]  # never rebooted back into service


def ended(lab: Lab, incident: int) -> list[dict[str, Any]]:
    found = steps(lab, incident)
    return found if found and found[0]["status"] != "running" else []


def resolved(lab: Lab, incident: int) -> bool:
    found: Any = api_get(lab, f"/v1/incidents/{incident}")
    return bool(found["status"] == "resolved")


def newer(lab: Lab, node: str, than: int) -> list[int]:
    return [i["id"] for i in incidents_after(lab, node, than)]


def test_a_node_an_operator_holds_is_not_rebooted_until_released(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node1"
    before = quiet(lab, node)
    with controller_with(lab, "60-it-recovery.toml", RECOVERY), evidence(lab, node):
        hpresil(lab, "hold", node, "--why", "bob: reseating the riser")
        xid79(lab, node, gpu=7)
        drained_once(lab, node, before)
        (incident,) = (i["id"] for i in incidents_after(lab, node, before))
        time.sleep(4)  # reconcile passes (1 s apart here) in which a reboot would start
        assert steps(lab, incident) == []
        assert "REBOOT" not in node_state(lab, node)[0]
        hpresil(lab, "release", node)
        found = wait_for("the reboot step to end", lambda: ended(lab, incident), 60, 0.5)
        step = cast(list[dict[str, Any]], found)[0]
        assert (step["rung"], step["status"]) == ("reboot", "passed"), step
        wait_for("the incident resolved", lambda: resolved(lab, incident), 90, 0.5)


def test_slurmctld_down_during_the_ladder_the_step_waits_and_goes_on(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node2"
    before = quiet(lab, node)
    with controller_with(lab, "60-it-recovery.toml", RECOVERY), evidence(lab, node):
        xid79(lab, node, gpu=6)
        drained_once(lab, node, before)
        (incident,) = (i["id"] for i in incidents_after(lab, node, before))
        wait_for("the reboot step", lambda: on_rung(lab, incident, "reboot"), 30, 0.1)
        lab.stop_process("slurmctld")  # the reboot asked for, the node not yet back
        try:
            time.sleep(6)  # reconcile passes: Slurm does not answer, the step waits
            assert rungs(lab, incident) == [("reboot", "running")]
        finally:
            lab.up()  # slurmctld back, its state recovered from StateSaveLocation
        wait_for("the incident resolved", lambda: resolved(lab, incident), 120, 0.5)
        assert rungs(lab, incident) == [
            ("reboot", "passed"),
            ("burnin", "passed"),
            ("resume", "passed"),
        ]
        wait_for("the node in service", lambda: in_service(lab, node), 60, 0.5)


def test_a_node_that_rebooted_unasked_is_burnt_in_and_returned(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node3"
    before = quiet(lab, node)
    with controller_with(lab, "60-it-recovery.toml", RECOVERY), evidence(lab, node):
        lab.reboot_unasked(node)
        wait_for(
            "Slurm's own reason",
            lambda: (
                "unexpectedly rebooted" in node_state(lab, node)[1]
                or bool(newer(lab, node, before))
            ),
            60,
            0.2,
        )
        (incident,) = wait_for("the incident", lambda: newer(lab, node, before), 30, 0.2)
        detail: Any = api_get(lab, f"/v1/incidents/{incident}")
        assert (detail["category"], detail["action"]) == ("host", "reboot")
        wait_for("the incident resolved", lambda: resolved(lab, incident), 90, 0.5)
        assert rungs(lab, incident) == [
            ("reboot", "passed"),
            ("burnin", "passed"),
            ("resume", "passed"),
        ]
        assert "Node unexpectedly rebooted" in steps(lab, incident)[0]["outcome"]
        wait_for("the node in service", lambda: in_service(lab, node), 60, 0.5)
