#!/usr/bin/env python3
"""Loop latency: the demo's fault, repeated on one long-running job.

Each round waits until the job has checkpointed again on its new node, injects XID 79
on its node, measures detect/drain/requeue/resume (seconds after the injection), then
returns the drained node to service with ``hpresil resume`` and clears its GPU
faults. Blame (the same failure on 3 nodes is the job's fault) and the restart budget
are set out of the way, as in job_resilience: the one job is interrupted on purpose,
round after round (without that it is held at round 3). After the main rounds,
``--baseline-rounds`` more run in the same lab with ``policy.expedite_requeue = false``
(Slurm's own requeue timing, a drop-in config and a controller restart), so the gain
of expediting is a side-by-side ratio. Prints one line
per round and p50/p95 tables; writes the raw figures to
``scripts/bench/results/loop_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from lab import Lab  # noqa: E402
from scenario import (  # noqa: E402
    BENCH_BUDGET,
    TrainingJob,
    allow_repeated_faults,
    inject_and_measure,
    return_to_service,
    submit_training,
    wait_agents,
    wait_running,
)

KEYS = ("detect_s", "drain_s", "requeue_s", "resume_s")
TARGETS = {"drain_s": 2.0, "resume_s": 20.0}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def run_rounds(lab: Lab, job: TrainingJob, n: int, label: str) -> list[dict[str, object]]:
    rounds: list[dict[str, object]] = []
    for i in range(1, n + 1):
        wait_running(lab, job, min_step=job.last_step() + 6, timeout=120)  # fresh checkpoint
        r = inject_and_measure(lab, job, fault="xid79", gpu=i % 8)
        rounds.append(r.summary())
        print(
            f"{label} {i:2d}: "
            + "  ".join(f"{k[:-2]} {getattr(r, k):6.2f}" for k in KEYS)
            + f"  {r.drained_node}->{r.resumed_node} from step {r.resumed_from_step}"
            f" (lost {r.steps_lost})",
            flush=True,
        )
        return_to_service(lab, r.drained_node)
        time.sleep(1)
    return rounds


def summarise(rounds: list[dict[str, object]]) -> dict[str, dict[str, float]]:
    def col(k: str) -> list[float]:
        return [float(str(r[k])) for r in rounds if r[k] is not None]

    return {
        k: {"p50": round(pct(col(k), 0.5), 3), "p95": round(pct(col(k), 0.95), 3)} for k in KEYS
    }


def show(title: str, summary: dict[str, dict[str, float]], targets: bool) -> None:
    print(f"\n{title}")
    print(f"{'':10s}{'p50':>8s}{'p95':>8s}  target")
    for k in KEYS:
        target = f"p50 <= {TARGETS[k]:g} s" if targets and k in TARGETS else ""
        print(f"{k[:-2]:10s}{summary[k]['p50']:8.2f}{summary[k]['p95']:8.2f}  {target}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--baseline-rounds", type=int, default=5)
    args = parser.parse_args()
    lab = Lab()
    try:
        lab.down()
        lab.reset_state()
        lab.write_config()
        allow_repeated_faults(lab)
        lab.up(hpresil=True)
        wait_agents(lab)
        job = submit_training(lab, name="bench-loop", comment=BENCH_BUDGET)
        rounds = run_rounds(lab, job, args.rounds, "round")
        baseline: list[dict[str, object]] = []
        if args.baseline_rounds:
            dropin = lab.hpresil_conf.with_name(lab.hpresil_conf.name + ".d")
            dropin.mkdir(exist_ok=True)
            baseline_conf = dropin / "50-bench-baseline.toml"
            baseline_conf.write_text("[policy]\nexpedite_requeue = false\n")
            lab.stop_process("controller")
            lab.start_controller()
            baseline = run_rounds(lab, job, args.baseline_rounds, "plain")
    finally:
        lab.down()
        lab.reset_state()  # also removes the baseline's configuration drop-in
    summary = summarise(rounds)
    where = f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores)"
    show(f"{len(rounds)} rounds on {where}, seconds after the injection:", summary, True)
    result: dict[str, object] = {"rounds": rounds, "summary": summary}
    if baseline:
        base = summarise(baseline)
        show(
            f"{len(baseline)} rounds with expedite_requeue = false (Slurm's own timing):",
            base,
            False,
        )
        ratio = base["resume_s"]["p50"] / summary["resume_s"]["p50"]
        print(f"\nexpediting makes the job run again {ratio:.1f}x sooner (resume p50)")
        result |= {
            "baseline_rounds": baseline,
            "baseline_summary": base,
            "resume_p50_ratio": round(ratio, 2),
        }
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out = HERE / "results" / "loop_latency.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"raw figures: {out.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
