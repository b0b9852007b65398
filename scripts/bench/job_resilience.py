#!/usr/bin/env python3
"""Job resilience: work lost per interruption and fault -> running-again latency.

For each format (Hugging Face Trainer and DeepSpeed layouts by default) one protected
job runs in the lab: a step every 0.25 s, a checkpoint every 8 steps whose save takes
0.4 s (written in the framework's order, so a fault can land mid-save). Each round
waits a random moment inside a checkpoint interval, injects XID 79 on the job's node,
and reads the job's own output:

* **fault -> running again**: from the injection to the new incarnation's start line
  (on another node, after the TaskProlog exported where to resume);
* **work lost**: from the commit of the checkpoint the new incarnation resumed from to
  the old instance's last output line (the work it redoes), in seconds and steps; the
  same figure as the controller's ledger records it (``hpresil jobs``: from that
  commit to the requeue) is printed beside it;
* **resumed at the newest complete checkpoint**: whether the step resumed from is the
  newest one the old instance reported complete before it stopped.

The drained node is returned to service between rounds. Blame (the same failure on 3
nodes is the job's fault) and the restart budget are set out of the way: interrupting
one job again and again with the same fault is what they exist to stop. Writes
``scripts/bench/results/job_resilience.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from lab import Lab  # noqa: E402
from loop_latency import pct  # noqa: E402
from scenario import (  # noqa: E402
    BENCH_BUDGET,
    TrainingJob,
    allow_repeated_faults,
    api_get,
    inject_and_measure,
    return_to_service,
    submit_training,
    wait_agents,
    wait_for,
    wait_running,
)

STEP_S, EVERY, SAVE_S = 0.25, 8, 0.4


def one_round(
    lab: Lab, job: TrainingJob, n: int, gpu: int, rng: random.Random
) -> dict[str, object]:
    wait_running(lab, job, min_step=job.last_step() + EVERY + 2, timeout=120)
    wait_for("the agent to report a checkpoint", lambda: _ledger(lab, job)["checkpoint"], 30, 0.5)
    time.sleep(rng.uniform(0, EVERY * STEP_S))  # anywhere in a checkpoint interval
    r = inject_and_measure(lab, job, fault="xid79", gpu=gpu)
    t_new, info = job.starts()[-1]
    old = [(t, kind, rest) for t, kind, rest in job.events() if t < t_new]
    commits = {int(rest.split()[0]): t for t, kind, rest in old if kind == "ckpt"}
    resumed = int(info["resumed_from"])
    last_step = max(int(rest) for _, kind, rest in old if kind == "step")
    last_t = max(t for t, _, _ in old)  # the old instance's last sign of life

    def exact() -> list[dict[str, object]]:  # the agent told it what the job resumed from
        stops = _ledger(lab, job)["interruptions"]
        assert isinstance(stops, list)
        done = len(stops) >= n and stops[n - 1]["resumed_at"]
        return stops if done and stops[n - 1]["checkpoint"] == info["path"] else []

    stops = wait_for("the ledger's interruption", exact, 30, 0.5)
    assert isinstance(stops, list)
    row = {
        "format": info["path"].rsplit("/", 1)[-1],
        "fault_to_running_s": r.resume_s,
        "lost_s": round(last_t - commits[resumed], 3) if resumed in commits else None,
        "lost_steps": last_step - resumed,
        "ledger_lost_s": stops[n - 1]["lost_s"],
        "resumed_newest": resumed == max(commits, default=0),
        "from": r.drained_node,
        "to": r.resumed_node,
    }
    return_to_service(lab, r.drained_node)
    return row


def _ledger(lab: Lab, job: TrainingJob) -> dict[str, object]:
    found = api_get(lab, f"/v1/jobs/{job.job_id}")
    assert isinstance(found, dict)
    return found


def stats(rows: list[dict[str, object]], key: str) -> dict[str, float]:
    values = [float(str(r[key])) for r in rows if r[key] is not None]
    return {"p50": round(pct(values, 0.5), 3), "p95": round(pct(values, 0.95), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interruptions per format")
    parser.add_argument("--formats", default="hf,deepspeed")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    lab = Lab()
    rows: list[dict[str, object]] = []
    try:
        lab.down()
        lab.reset_state()
        lab.write_config()
        allow_repeated_faults(lab)
        lab.up(hpresil=True)
        wait_agents(lab)
        for fmt in args.formats.split(","):
            job = submit_training(
                lab,
                name=f"bench-{fmt}",
                step_s=STEP_S,
                fmt=fmt,
                every=EVERY,
                extra=("--save-s", str(SAVE_S)),
                comment=BENCH_BUDGET,
            )
            for i in range(1, args.rounds + 1):
                row = one_round(lab, job, i, i % 8, rng)
                rows.append(row)
                print(
                    f"{fmt:10s} {i}: running again after {row['fault_to_running_s']:5.2f} s, "
                    f"lost {row['lost_s']} s ({row['lost_steps']} steps; ledger "
                    f"{row['ledger_lost_s']}), newest: {row['resumed_newest']}, "
                    f"{row['from']}->{row['to']}",
                    flush=True,
                )
            lab.slurm(["scancel", str(job.job_id)])
    finally:
        lab.down()
        lab.reset_state()
    summary = {k: stats(rows, k) for k in ("fault_to_running_s", "lost_s", "ledger_lost_s")}
    newest = sum(1 for r in rows if r["resumed_newest"])
    where = f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores)"
    print(f"\n{len(rows)} interruptions on {where}")
    print(f"  checkpoint every {EVERY * STEP_S:g} s of work, each save {SAVE_S:g} s")
    for k, v in summary.items():
        print(f"  {k:20s} p50 {v['p50']:6.2f}  p95 {v['p95']:6.2f}")
    print(f"  resumed at the newest complete checkpoint: {newest} of {len(rows)}")
    out = HERE / "results" / "job_resilience.json"
    out.write_text(
        json.dumps(
            {
                "rounds": rows,
                "summary": summary,
                "resumed_newest": f"{newest}/{len(rows)}",
                "checkpoint_every_s": EVERY * STEP_S,
                "save_s": SAVE_S,
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            indent=2,
        )
    )
    print(f"raw figures: {out.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
