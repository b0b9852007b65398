"""The recovery ladder's reboot rung on real Slurm: an XID 79 on a free node, drained
by hpresil, is rebooted through ``scontrol reboot ASAP nextstate=DOWN`` (the lab's
RebootProgram restarts the node's slurmd with -b, as a reboot does) and comes back
DOWN with hpresil's reason, taking no job; the step passes in the incident's ledger.
A node someone else drained is left alone. A GPU that falls off the bus again is
marked for replacement and the site's replace hook gets the incident."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from lab import Lab
from scenario import api_get, controller_with, hpresil, incidents_after, node_state, wait_for

from tests.integration.faultkit import drained_once, evidence, quiet

RECOVERY = "[recovery]\nenabled = true\n"


def xid79(lab: Lab, node: str, gpu: int) -> None:
    """XID 79 on a GPU no other lab test faults with it: an earlier fault of the same
    category on the same GPU would make the policy climb its ladder (to replace)."""
    argv = ["inject", "xid", "79", "--gpu", str(gpu), "--node", node]
    hpresil(lab, *argv, env=lab.node_env(node))


def steps(lab: Lab, incident: int) -> list[dict[str, Any]]:
    found: Any = api_get(lab, f"/v1/incidents/{incident}")
    return list(found["recovery"])


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


def test_a_reboot_through_slurm_brings_the_node_back_down_and_still_hpresils(
    clean_lab: Lab,
) -> None:
    lab, node = clean_lab, "node4"
    before = quiet(lab, node)
    booted = boot_time(lab, node)
    with controller_with(lab, "60-it-recovery.toml", RECOVERY), evidence(lab, node):
        xid79(lab, node, gpu=7)
        drained_once(lab, node, before)
        (incident,) = (i["id"] for i in incidents_after(lab, node, before))

        (step,) = wait_for("the reboot step to end", lambda: ended(lab, incident), 60, 0.5)
        assert (step["rung"], step["status"]) == ("reboot", "passed"), step
        assert "awaiting burn-in" in step["outcome"] and "policy: reboot" in step["why"]
        state, reason = node_state(lab, node)
        assert state == "DOWN"  # Slurm starts no job on it
        assert reason.startswith("hpresil: #") and "xid 79" in reason  # still hpresil's
        assert reason.endswith(": reboot issued : reboot complete")
        new_boot = boot_seconds(boot_time(lab, node))
        assert new_boot > boot_seconds(booted) + 5 and new_boot > time.time() - 120
        detail: Any = api_get(lab, f"/v1/incidents/{incident}")
        assert detail["status"] == "open"
        reboots = [a for a in detail["actions"] if a["kind"] == "reboot"]
        assert [(a["status"], a["outcome"]) for a in reboots] == [("done", "requested")]


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
    told = lab.root / "replace-hook.json"
    told.unlink(missing_ok=True)
    hook = f'replace_command = ["sh", "-c", "cat > {told}"]\n'
    before = quiet(lab, node)
    with controller_with(lab, "60-it-recovery.toml", RECOVERY + hook), evidence(lab, node):
        xid79(lab, node, gpu=5)  # the first time: rebooted, then returned by hand
        drained_once(lab, node, before)
        (first,) = (i["id"] for i in incidents_after(lab, node, before))
        wait_for("the reboot step to end", lambda: ended(lab, first), 60, 0.5)
        lab.heal(node)
        lab.slurm(["scontrol", "update", f"nodename={node}", "state=resume"])
        wait_for("the first incident resolved", lambda: resolved(lab, first), 30, 0.5)

        xid79(lab, node, gpu=5)  # the same GPU again: the policy climbs to replace
        (second,) = wait_for("the second incident", lambda: newer(lab, node, first), 30, 0.2)
        (step,) = wait_for("the replace step to end", lambda: ended(lab, second), 60, 0.5)
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
        (step,) = wait_for("the reboot step to end", lambda: ended(lab, incident), 60, 0.5)
        assert (step["rung"], step["status"]) == ("reboot", "passed"), step
