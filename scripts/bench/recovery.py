#!/usr/bin/env python3
"""The recovery ladder on the real lab: fault -> back in service, without a human.

``[recovery] enabled = true``; a training job runs (Hugging Face checkpoints). Each of
N runs (default 10) injects XID 79 (``hpresil inject``, through the node's agent) on
the node the job runs on and follows, in seconds after the injection: ``drained``
(Slurm shows hpresil's drain), ``job_resumed`` (the job running again elsewhere from
its checkpoint, as the demo shows), ``rebooted`` (the reboot step passed: ``scontrol
reboot ASAP nextstate=DOWN``, Slurm's RebootProgram, the node registered with a new
boot time), ``burnin_passed`` (the agent's burn-in step passed: the product's runners
against the lab's stand-in gpu_burn, all_reduce_perf and dcgmi) and ``back_in_service``
(the incident resolved and Slurm showing the node IDLE, no reason: the MTTR). Step
times are the ledger's; ``back_in_service`` is seen in Slurm, polled every 0.1 s.

Then two runs on a node without a job: XID 119 (GSP RPC timeout), which a GPU reset
clears (the agent runs the lab's stand-in ``nvidia-smi -r``); and XID 79 on a GPU the
lab marks broken for good, whose burn-in fails and which goes to replace (its hook
called with the incident). Prints each run, p50/p95 of the XID 79 runs, the burn-in's
share of the MTTR, and where the nodes ended; writes
scripts/bench/results/recovery.json.

The lab's reboot is a slurmd restart (about 3 s; a GPU server takes minutes) and its
burn-in is short (``burnin.gpu_burn_s = 5``; a site's runs 60 s or more, DCGM level 3
tens of minutes): the figures are hpresil's own overhead around them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from lab import Lab  # noqa: E402
from loop_latency import pct  # noqa: E402  (this folder: the script's own)
from scenario import (  # noqa: E402
    BENCH_BUDGET,
    Recovery,
    allow_repeated_faults,
    dropin_path,
    follow_recovery,
    hpresil,
    incidents_after,
    inject_and_measure,
    job_field,
    newest_incident_id,
    submit_training,
    wait_agents,
    wait_for,
    wait_running,
)

KEYS = ("drained", "job_resumed", "rebooted", "burnin_passed", "back_in_service")
RECOVERY = '[recovery]\nenabled = true\nreplace_command = ["sh", "-c", "cat > {told}"]\n'


def xid_run(lab: Lab, node: str, xid: int, gpu: int) -> Recovery:
    """XID ``xid`` on GPU ``gpu`` of ``node`` (no job there), followed to its end."""
    before = newest_incident_id(lab)
    t0 = time.time()
    argv = ["inject", "xid", str(xid), "--gpu", str(gpu), "--node", node]
    hpresil(lab, *argv, env=lab.node_env(node))
    found = wait_for("the incident", lambda: newer(lab, node, before), 30, 0.1)
    return follow_recovery(lab, node, int(str(found)), t0, timeout=240)


def newer(lab: Lab, node: str, than: int) -> int | None:
    found = incidents_after(lab, node, than)
    return int(str(found[0]["id"])) if found else None


def job_run(lab: Lab, job: Any, used: set[tuple[str, int]]) -> dict[str, Any]:
    node = job_field(lab, job.job_id, "BatchHost")
    gpu = next(g for g in range(8) if (node, g) not in used)  # a repeat would escalate
    used.add((node, gpu))
    fault = inject_and_measure(lab, job, fault="xid79", gpu=gpu)
    done = follow_recovery(lab, node, fault.incident, fault.injected_at, timeout=240)
    if done.back_in_service_s is None:
        raise RuntimeError(f"{node}: the ladder ended {done.ended}: {done.steps}")
    burnin = next(s for s in done.steps if s["rung"] == "burnin")
    return {
        "node": node,
        "gpu": gpu,
        "incident": fault.incident,
        "drained": fault.drain_s,
        "job_resumed": fault.resume_s,
        "rebooted": done.rung_s("reboot"),
        "burnin_passed": done.rung_s("burnin"),
        "back_in_service": done.back_in_service_s,
        "burnin_s": round(burnin["end_s"] - burnin["start_s"], 3),
        "steps": done.steps,
    }


def stats(values: list[float]) -> dict[str, float]:
    return {"p50": round(pct(values, 0.5), 2), "p95": round(pct(values, 0.95), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    lab = Lab()
    runs: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    told = lab.root / "bench-replace-hook.json"
    try:
        lab.down()
        lab.reset_state()
        lab.write_config()
        dropin_path(lab, "50-bench-recovery.toml").write_text(RECOVERY.format(told=told))
        allow_repeated_faults(lab)
        lab.up(hpresil=True)
        wait_agents(lab)
        job = submit_training(lab, comment=BENCH_BUDGET)
        wait_running(lab, job, min_step=6)
        used: set[tuple[str, int]] = set()
        for i in range(1, args.runs + 1):
            run = job_run(lab, job, used)
            runs.append(run)
            print(f"run {i:2d} {run['node']}: " + "  ".join(f"{k} {run[k]:6.2f}" for k in KEYS))
        extra = side_runs(lab, job, told)
        extra["stats_mttr"] = hpresil(lab, "stats", "mttr")  # what a site would read
        print(extra["stats_mttr"], end="")
    finally:
        lab.down()
        lab.reset_state()  # also removes the drop-ins
    return report(runs, extra)


def side_runs(lab: Lab, job: Any, told: Path) -> dict[str, Any]:
    """A reset that clears it; a GPU broken for good that goes to replace."""
    busy = job_field(lab, job.job_id, "BatchHost")
    free = [n for n in lab.node_names if n != busy]
    reset = xid_run(lab, free[0], 119, gpu=7)
    print(f"reset   {free[0]}: {reset.ended} after {reset.back_in_service_s} s")
    lab.break_gpu(free[1], 7)
    try:
        replaced = xid_run(lab, free[1], 79, gpu=7)
    finally:
        lab.break_gpu(free[1], 7, broken=False)
    hooked: Any = json.loads(told.read_text()) if told.exists() else {}
    print(f"replace {free[1]}: {replaced.ended}; hook given incident #{hooked.get('id')}")
    return {
        "reset": {
            "node": free[0],
            "ended": reset.ended,
            "back_in_service": reset.back_in_service_s,
            "steps": reset.steps,
        },
        "replace": {
            "node": free[1],
            "ended": replaced.ended,
            "hook_incident": hooked.get("id"),
            "steps": replaced.steps,
        },
    }


def report(runs: list[dict[str, Any]], extra: dict[str, Any]) -> int:
    summary = {k: stats([r[k] for r in runs]) for k in KEYS}
    share = [r["burnin_s"] / r["back_in_service"] for r in runs]
    summary["burnin_s"] = stats([r["burnin_s"] for r in runs])
    summary["burnin_share"] = stats(share)
    ended: dict[str, int] = {"back in service": len(runs)}
    for side in (extra.get("reset"), extra.get("replace")):
        if side is not None:
            ended[side["ended"]] = ended.get(side["ended"], 0) + 1
    where = f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores)"
    print(f"\n{len(runs)} XID 79 runs on {where}, seconds after the injection:")
    print(f"{'':18s}{'p50':>8s}{'p95':>8s}")
    for k in (*KEYS, "burnin_s", "burnin_share"):
        print(f"{k:18s}{summary[k]['p50']:8.2f}{summary[k]['p95']:8.2f}")
    print(f"nodes ended: {ended}")
    result = {
        "runs": runs,
        "summary": summary,
        "side_runs": extra,
        "ended": ended,
        "lab": "reboot: scripts/lab-reboot restarts slurmd with -b (about 3 s); "
        "burn-in: scripts/lab-tools stand-ins, gpu_burn 5 s, no CUDA GEMM",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": where,
    }
    out = HERE / "results" / "recovery.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"raw figures: {out.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
