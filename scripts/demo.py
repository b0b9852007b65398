#!/usr/bin/env python3
"""The demo: a real Slurm lab, hpresil on top, one GPU fault, and what happens next:
the job resumes elsewhere from its checkpoint, and the recovery ladder brings the node
back (a reboot through Slurm, a burn-in, a resume).

Run through ``scripts/demo`` (which installs what is needed first). Prints the story
as it happens, a timeline, and as its last line one JSON object with the latencies.
Stops everything it started, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab import Lab, LabError
from scenario import (
    FAULTS,
    ScenarioError,
    api_get,
    dropin_path,
    follow_recovery,
    hpresil,
    inject_and_measure,
    submit_training,
    wait_agents,
    wait_for,
    wait_running,
)

START = time.monotonic()
RECOVERY = "[recovery]\nenabled = true   # the demo follows the node back to service\n"


def say(text: str) -> None:
    print(f"[{time.monotonic() - START:6.1f}s] {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fault",
        choices=FAULTS,
        default="xid79",
        help="what breaks: XID 79, uncorrectable ECC, row-remap failure, "
        "an InfiniBand port (default: xid79)",
    )
    parser.add_argument("--gpu", type=int, default=3)
    args = parser.parse_args()
    lab = Lab()
    try:
        say("stopping any earlier lab and clearing its history")
        lab.down()
        lab.reset_state()
        dropin_path(lab, "60-demo-recovery.toml").write_text(RECOVERY)
        say(
            f"starting Slurm ({lab.nodes} nodes x {lab.gpus} GPUs), the controller, one agent "
            f"per node (reading its GPUs through pynvml from the NVML double: {lab.gpu_preset})"
        )
        lab.up(hpresil=True)
        wait_agents(lab)
        print(hpresil(lab, "status"), end="")
        job = submit_training(lab)
        say(
            f"submitted training job {job.job_id} (requeueable, Hugging Face checkpoints every "
            f"5 steps, protected: --comment=hpresil:ckpt={job.ckpt_dir})"
        )
        node = wait_running(lab, job, min_step=12)
        say(f"job {job.job_id} running on {node}, at step {job.last_step()}")
        say(f"injecting {args.fault} (GPU {args.gpu}) on {node}")
        result = inject_and_measure(lab, job, fault=args.fault, gpu=args.gpu, say=say)
        print(hpresil(lab, "incidents", str(result.incident)), end="")
        if result.resumed_node is not None:
            _, started = job.starts()[-1]
            say(f"the TaskProlog gave the new instance HPRESIL_RESUME_FROM={started['path']}")
            print(hpresil(lab, "checkpoint", "list", str(job.ckpt_dir)), end="")
            wait_for(
                "the ledger to learn what the job resumed from",
                lambda: _resumed_known(lab, job.job_id, started["path"]),
                20,
                0.5,
            )
            print(hpresil(lab, "jobs", str(job.job_id)), end="")
        say(f"the recovery ladder brings {result.drained_node} back: reboot, burn-in, resume")
        recovery = follow_recovery(
            lab, result.drained_node, result.incident, result.injected_at, say=say
        )
        print(hpresil(lab, "incidents", str(result.incident)), end="")
        print(hpresil(lab, "status"), end="")
        print(hpresil(lab, "stats", "mttf", "--by", "node"), end="")
        say("timeline (seconds after the injection):")
        for key in ("detect_s", "drain_s", "requeue_s", "resume_s"):
            value = getattr(result, key)
            shown = "   -  (policy: the job finishes)" if value is None else f"{value:7.2f}"
            print(f"    {key[:-2]:8s} {shown}")
        for step in recovery.steps:  # the node's ladder ("returned": its resume rung)
            name = "returned" if step["rung"] == "resume" else step["rung"]
            print(
                f"    {name:8s} {step['end_s']:7.2f}  {step['status']} "
                f"(took {step['end_s'] - step['start_s']:.2f} s)"
            )
        if recovery.back_in_service_s is not None:
            print(f"    {'back':8s} {recovery.back_in_service_s:7.2f}  in service")
        if result.resumed_node is not None:
            print(
                f"    resumed from step {result.resumed_from_step} on {result.resumed_node} "
                f"({result.steps_lost} steps lost)"
            )
        print(f"    {result.drained_node} drained {result.drain_reason!r}")
        ok = 0
    except (LabError, ScenarioError, OSError) as exc:
        say(f"demo failed: {exc}")
        say(f"logs: {lab.log_dir}")
        ok = 1
    except KeyboardInterrupt:
        say("interrupted")
        ok = 130
    finally:
        say("stopping everything the demo started")
        lab.down()
    if ok == 0:
        print(json.dumps({**result.summary(), "back_in_service_s": recovery.back_in_service_s}))
    return ok


def _resumed_known(lab: Lab, job_id: int, path: str) -> bool:
    found = api_get(lab, f"/v1/jobs/{job_id}")
    stops = found.get("interruptions") if isinstance(found, dict) else None
    return bool(stops) and stops[-1]["checkpoint"] == path


if __name__ == "__main__":
    sys.exit(main())
