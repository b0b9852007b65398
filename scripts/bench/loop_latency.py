#!/usr/bin/env python3
"""Loop latency: the demo's fault, repeated on one long-running job.

Each round waits until the job has checkpointed again on its new node, injects XID 79
on its node, measures detect/drain/requeue/resume (seconds after the injection), then
returns the drained node to service with ``hpresil resume`` and clears its simulated
GPU state. Prints one line per round and a p50/p95 table; writes the raw figures to
``scripts/bench/results/loop_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from lab import Lab  # noqa: E402
from scenario import (  # noqa: E402
    hpresil,
    inject_and_measure,
    submit_training,
    wait_agents,
    wait_for,
    wait_running,
)

KEYS = ("detect_s", "drain_s", "requeue_s", "resume_s")
TARGETS = {"drain_s": 2.0, "resume_s": 20.0}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    lab = Lab()
    rounds: list[dict[str, object]] = []
    try:
        lab.down()
        lab.reset_state()
        lab.up(hpresil=True)
        wait_agents(lab)
        job = submit_training(lab, name="bench-loop")
        for i in range(1, args.rounds + 1):
            floor = job.last_step() + 6  # a fresh checkpoint on the current node
            wait_running(lab, job, min_step=floor, timeout=120)
            r = inject_and_measure(lab, job, xid=79, gpu=i % 8)
            rounds.append(r.summary())
            print(
                f"round {i:2d}: "
                + "  ".join(f"{k[:-2]} {getattr(r, k):6.2f}" for k in KEYS)
                + f"  {r.drained_node}->{r.resumed_node} from step {r.resumed_from_step}"
                f" (lost {r.steps_lost})",
                flush=True,
            )
            hpresil(lab, "resume", r.drained_node)
            (lab.root / "sim" / f"{r.drained_node}.json").unlink(missing_ok=True)
            wait_for(
                "the node back in service",
                lambda n=r.drained_node: (
                    "drain" not in lab.slurm(["sinfo", "-h", "-n", n, "-o", "%T"]).stdout
                ),
                15,
            )
            time.sleep(1)
    finally:
        lab.down()
    summary = {
        k: {
            "p50": round(pct([float(r[k]) for r in rounds], 0.5), 3),  # type: ignore[arg-type]
            "p95": round(pct([float(r[k]) for r in rounds], 0.95), 3),
        }  # type: ignore[arg-type]
        for k in KEYS
    }
    print(
        f"\n{len(rounds)} rounds on {platform.node()} ({platform.machine()}), "
        "seconds after the injection:"
    )
    print(f"{'':10s}{'p50':>8s}{'p95':>8s}  target")
    for k in KEYS:
        target = f"p50 <= {TARGETS[k]:g} s" if k in TARGETS else ""
        print(f"{k[:-2]:10s}{summary[k]['p50']:8.2f}{summary[k]['p95']:8.2f}  {target}")
    out = HERE / "results" / "loop_latency.json"
    out.write_text(
        json.dumps(
            {
                "rounds": rounds,
                "summary": summary,
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            indent=2,
        )
    )
    print(f"raw figures: {out.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
