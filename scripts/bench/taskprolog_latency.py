#!/usr/bin/env python3
"""TaskProlog latency: ``python -I -m hpresil.job.taskprolog`` as Slurm runs it before
every task (a fresh interpreter, the task's environment), on a checkpoint directory of
``--checkpoints`` committed hpresil checkpoints plus a half-written newer one, with
``HPRESIL_CKPT_DIR`` set (no ``scontrol`` call). Alternates with a bare interpreter
start (``python -I -c pass``) so the cost of hpresil itself is a side-by-side figure.
Prints p50/p95; writes scripts/bench/results/taskprolog_latency.json."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hpresil.ckpt import manifest

HERE = Path(__file__).resolve().parent


def build(root: Path, count: int) -> Path:
    ckpt = root / "run"
    for step in range(1, count + 1):
        path = ckpt / f"step-{step}"
        path.mkdir(parents=True)
        (path / "model.bin").write_bytes(b"w" * 256)
        manifest.write(path, step)
    half = ckpt / f"step-{count + 1}"  # the node died before the manifest
    half.mkdir()
    (half / "model.bin").write_bytes(b"")
    return ckpt


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    return (time.perf_counter() - start) * 1000, done.stdout


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--checkpoints", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = build(Path(tmp), args.checkpoints)
        env = {
            "PATH": "/usr/bin:/bin",
            "SLURM_JOB_ID": "812",
            "SLURM_PROCID": "0",
            "SLURM_RESTART_COUNT": "1",
            "SLURMD_NODENAME": "node1",
            "HPRESIL_CKPT_DIR": str(ckpt),
        }
        prolog = [sys.executable, "-I", "-m", "hpresil.job.taskprolog"]
        bare = [sys.executable, "-I", "-c", "pass"]
        _, out = timed(prolog, env)
        want = f"export HPRESIL_RESUME_FROM={ckpt / f'step-{args.checkpoints}'}"
        if want not in out.splitlines():
            raise SystemExit(f"the TaskProlog did not choose the newest complete one:\n{out}")
        prolog_ms, bare_ms = [], []
        for _ in range(args.runs):
            prolog_ms.append(timed(prolog, env)[0])
            bare_ms.append(timed(bare, env)[0])
    result = {
        "runs": args.runs,
        "checkpoints": args.checkpoints,
        "taskprolog_ms": {
            "p50": round(pct(prolog_ms, 0.5), 1),
            "p95": round(pct(prolog_ms, 0.95), 1),
        },
        "bare_python_ms": {"p50": round(pct(bare_ms, 0.5), 1), "p95": round(pct(bare_ms, 0.95), 1)},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    t, b = result["taskprolog_ms"], result["bare_python_ms"]
    print(f"TaskProlog, {args.checkpoints} checkpoints + 1 half-written, {args.runs} runs:")
    print(f"  taskprolog   p50 {t['p50']:6.1f} ms  p95 {t['p95']:6.1f} ms")
    print(f"  bare python  p50 {b['p50']:6.1f} ms  p95 {b['p95']:6.1f} ms")
    print(f"  hpresil's own part: p50 {t['p50'] - b['p50']:.1f} ms")
    out = HERE / "results" / "taskprolog_latency.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"raw figures: {out.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
