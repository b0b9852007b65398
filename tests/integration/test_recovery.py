"""The recovery ladder's reboot rung on real Slurm: an XID 79 on a free node, drained
by hpresil, is rebooted through ``scontrol reboot ASAP nextstate=DOWN`` (the lab's
RebootProgram restarts the node's slurmd with -b, as a reboot does) and comes back
DOWN with hpresil's reason, taking no job; the step passes in the incident's ledger.
A node someone else drained is left alone."""

from __future__ import annotations

import time
from typing import Any

from lab import Lab
from scenario import api_get, controller_with, incidents_after, node_state, wait_for

from tests.integration.faultkit import drained_once, evidence, inject_xid79, quiet

RECOVERY = "[recovery]\nenabled = true\n"


def steps(lab: Lab, incident: int) -> list[dict[str, Any]]:
    found: Any = api_get(lab, f"/v1/incidents/{incident}")
    return list(found["recovery"])


def drains_ended(lab: Lab, incident: int) -> bool:
    found: Any = api_get(lab, f"/v1/incidents/{incident}")
    return any(a["kind"] == "drain" and a["status"] != "pending" for a in found["actions"])


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
        inject_xid79(lab, node)
        drained_once(lab, node, before)
        (incident,) = (i["id"] for i in incidents_after(lab, node, before))

        def ended() -> list[dict[str, Any]]:
            found = steps(lab, incident)
            return found if found and found[0]["status"] != "running" else []

        (step,) = wait_for("the reboot step to end", ended, 60, 0.5)
        assert (step["rung"], step["status"]) == ("reboot", "passed"), step
        assert "awaiting burn-in" in step["outcome"] and "policy: reboot" in step["why"]
        state, reason = node_state(lab, node)
        assert state == "DOWN"  # Slurm starts no job on it
        assert reason.startswith("hpresil: #") and "xid 79" in reason  # still hpresil's
        assert reason.endswith(": reboot issued : reboot complete")
        assert boot_time(lab, node) != booted
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
        inject_xid79(lab, node)
        (incident,) = wait_for(
            "the incident", lambda: [i["id"] for i in incidents_after(lab, node, before)], 30, 0.2
        )
        wait_for("its drain (skipped: not hpresil's node)", lambda: drains_ended(lab, incident), 30)
        time.sleep(4)  # reconcile passes (1 s apart here) in which a reboot would start
        assert steps(lab, incident) == []
        state, reason = node_state(lab, node)
        assert "DRAIN" in state and reason == "bob: swapping a riser"
        assert boot_time(lab, node) == booted
