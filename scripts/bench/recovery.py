#!/usr/bin/env python3
"""The recovery ladder on the real lab, as far as it is built: an XID 79 on a free
node, then its reboot through Slurm (``[recovery] enabled = true``).

Each run injects XID 79 (``hpresil inject``, through the node's agent) on one node
that runs no job and follows it, polling every 0.1 s, in seconds after the injection:
``drained`` (Slurm shows hpresil's drain), ``reboot_requested`` (the executor's
``reboot`` action done: ``scontrol reboot ASAP nextstate=DOWN`` taken), ``booted``
(Slurm shows a new BootTime, the node DOWN with no reboot pending) and ``step_passed``
(the incident's reboot step passed in hpresil's ledger). Then the node's GPU faults
are cleared and ``hpresil resume`` returns it to service, as an operator would until
the burn-in rung lands. The lab's RebootProgram restarts the node's slurmd with -b
(about 3 s), so ``booted`` is the lab's, not a GPU server's (minutes); what is
hpresil's own is ``drained -> reboot_requested`` (waiting for the reconcile pass,
1 s here) and ``booted -> step_passed`` (noticing it). Prints each run and p50/p95;
writes scripts/bench/results/recovery.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from lab import Lab  # noqa: E402
from loop_latency import pct  # noqa: E402  (this folder: the script's own)
from scenario import api_get, dropin_path, hpresil, newest_incident_id, wait_agents  # noqa: E402

KEYS = ("drained", "reboot_requested", "booted", "step_passed")
NODES = ("node3", "node4")  # no job runs there; a GPU faults once (a repeat escalates)


def slurm_node(lab: Lab, node: str) -> tuple[str, str, str]:
    """(State, BootTime, Reason) as ``scontrol show node`` prints them."""
    out = lab.slurm(["scontrol", "-o", "show", "node", node]).stdout
    state = re.search(r"\bState=(\S+)", out)
    boot = re.search(r"\bBootTime=(\S+)", out)
    reason = re.search(r"\bReason=(.*?)(?: \[[^\]]*\])?\s*$", out)
    return (
        state.group(1) if state else "",
        boot.group(1) if boot else "",
        reason.group(1) if reason else "",
    )


def one_run(lab: Lab, node: str, gpu: int, timeout: float = 120.0) -> dict[str, Any]:
    before = newest_incident_id(lab)
    t0 = time.monotonic()
    hpresil(lab, "inject", "xid", "79", "--gpu", str(gpu), "--node", node, env=lab.node_env(node))
    seen: dict[str, float] = {}
    incident: int | None = None
    boot_at_request = ""
    while len(seen) < len(KEYS) and time.monotonic() - t0 < timeout:
        now = time.monotonic() - t0
        state, boot, _ = slurm_node(lab, node)
        if "drained" not in seen and "DRAIN" in state:
            seen["drained"] = now
        waiting = "reboot_requested" in seen and "booted" not in seen
        if waiting and boot != boot_at_request and "REBOOT" not in state:
            seen["booted"] = now
        if incident is None:
            found: Any = api_get(lab, f"/v1/incidents?node={node}")
            incident = next((i["id"] for i in found if i["id"] > before), None)
        if incident is not None:
            detail: Any = api_get(lab, f"/v1/incidents/{incident}")
            actions = detail["actions"]
            if "reboot_requested" not in seen and any(
                a["kind"] == "reboot" and a["status"] == "done" for a in actions
            ):
                seen["reboot_requested"], boot_at_request = now, boot
            steps = detail["recovery"]
            if steps and steps[0]["status"] == "passed":
                seen.setdefault("step_passed", now)
            elif steps and steps[0]["status"] in ("failed", "stopped"):
                raise RuntimeError(f"the reboot step ended {steps[0]}")
        time.sleep(0.1)
    missing = [k for k in KEYS if k not in seen]
    if missing:
        raise RuntimeError(f"run timed out waiting for {missing}: {slurm_node(lab, node)}")
    lab.heal(node)
    hpresil(lab, "resume", node)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not slurm_node(lab, node)[0].startswith("IDLE"):
        time.sleep(0.2)
    return {"node": node, "gpu": gpu, "incident": incident, **{k: round(seen[k], 2) for k in KEYS}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    lab = Lab()
    runs: list[dict[str, Any]] = []
    try:
        lab.down()
        lab.reset_state()
        lab.write_config()
        dropin_path(lab, "50-bench-recovery.toml").write_text("[recovery]\nenabled = true\n")
        lab.up(hpresil=True)
        wait_agents(lab)
        for i in range(1, args.runs + 1):
            run = one_run(lab, NODES[i % 2], gpu=(i // 2) % 8)
            runs.append(run)
            print(f"run {i:2d}: " + "  ".join(f"{k} {run[k]:6.2f}" for k in KEYS), flush=True)
            wait_agents(lab)
    finally:
        lab.down()
        lab.reset_state()  # also removes the drop-in
    summary = {
        k: {
            "p50": round(pct([r[k] for r in runs], 0.5), 2),
            "p95": round(pct([r[k] for r in runs], 0.95), 2),
        }
        for k in KEYS
    }
    hops = {
        "drained -> reboot_requested": [r["reboot_requested"] - r["drained"] for r in runs],
        "booted -> step_passed": [r["step_passed"] - r["booted"] for r in runs],
    }
    own = {
        k: {"p50": round(pct(v, 0.5), 2), "p95": round(pct(v, 0.95), 2)} for k, v in hops.items()
    }
    where = f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores)"
    print(f"\n{len(runs)} runs on {where}, seconds after the injection:")
    print(f"{'':20s}{'p50':>8s}{'p95':>8s}")
    for k in KEYS:
        print(f"{k:20s}{summary[k]['p50']:8.2f}{summary[k]['p95']:8.2f}")
    for k, v in own.items():
        print(f"{k:30s}{v['p50']:8.2f}{v['p95']:8.2f}")
    result = {
        "runs": runs,
        "summary": summary,
        "hpresil_own": own,
        "lab_reboot": "scripts/lab-reboot restarts the node's slurmd with -b (about 3 s)",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": where,
    }
    out = HERE / "results" / "recovery.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"raw figures: {out.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
