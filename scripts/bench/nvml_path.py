#!/usr/bin/env python3
"""The NVML path as a node runs it, with the NVML double standing in for the driver.

* **CPU per sample**: in one process, ``NvmlBackend.devices()`` (every record of 8
  H100 SXM through pynvml and ctypes into ``libnvidia-ml.so.1``) ``--samples`` times:
  CPU milliseconds per call (``time.process_time``), and per GPU; and the memory that
  importing pynvml, loading the library and a first sample add to the process (RSS).
* **Quick tier**: ``hpresil check --tier quick --json`` (the checks the Slurm hooks
  and the agent's every tick run: GPU presence, ECC, row remapping, temperature, ...)
  in a fresh process, ``--runs`` times, alternating with ``hpresil --version`` (the
  CLI's own start) so hpresil's part is a side-by-side figure; wall and CPU time
  (the child's rusage) per run.

The double answers from memory, so the figures are hpresil's and pynvml's cost, not a
driver's (a real driver's ioctls come on top). Writes
scripts/bench/results/nvml_path.json."""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import gpu_double  # noqa: E402


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(pct(values, 0.5), 1), "p95": round(pct(values, 0.95), 1)}


def per_sample_cpu(state: Path, samples: int) -> dict[str, float]:
    """In a child with the double's environment (pynvml loads it by its soname)."""
    code = (
        "import json, os, sys, time\n"
        "import hpresil.vocab.gpu\n"
        "def rss():\n"
        "    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')\n"
        "before = rss()\n"
        "from hpresil.adapters.gpu.nvml import NvmlBackend\n"
        "b = NvmlBackend()\n"
        "gpus = b.devices()\n"
        "grown = rss() - before\n"
        "assert len(gpus) == 8 and not any(g.error or g.lost for g in gpus), gpus[0]\n"
        f"n = {samples}\n"
        "t0, w0 = time.process_time(), time.perf_counter()\n"
        "for _ in range(n):\n"
        "    b.devices()\n"
        "cpu, wall = time.process_time() - t0, time.perf_counter() - w0\n"
        "print(json.dumps({'cpu_ms': 1000 * cpu / n, 'wall_ms': 1000 * wall / n,\n"
        "                  'rss_mib': grown / 2**20}))\n"
    )
    env = {**os.environ, **gpu_double.env(state)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall ms, CPU ms (user + system of the child) and stdout of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
    return wall, cpu, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    gpu_double.build()
    hpresil = str(REPO / ".venv" / "bin" / "hpresil")
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "node1.state"
        gpu_double.write_node(state, "node1", preset="h100-sxm", gpus=8)
        config = Path(tmp) / "hpresil.toml"
        config.write_text(
            '[agent.gpu]\nbackend = "nvml"\nexpected_count = 8\n[checks.services]\nrequired = []\n'
        )
        sample = per_sample_cpu(state, args.samples)
        env = {**os.environ, **gpu_double.env(state)}
        check = [hpresil, "--config", str(config), "check", "--tier", "quick", "--json"]
        bare = [hpresil, "--version"]
        _, _, out = timed(check, env)
        results = json.loads(out)
        if not results or any(r["status"] not in ("ok", "unsupported") for r in results):
            raise SystemExit(f"the quick tier did not pass on healthy GPUs:\n{out}")
        walls: dict[str, list[float]] = {"check": [], "bare": []}
        cpus: dict[str, list[float]] = {"check": [], "bare": []}
        for _ in range(args.runs):
            for name, argv in (("check", check), ("bare", bare)):
                wall, cpu, _ = timed(argv, env)
                walls[name].append(wall)
                cpus[name].append(cpu)
    result = {
        "gpus": 8,
        "preset": "h100-sxm",
        "sample_cpu_ms": round(sample["cpu_ms"], 2),
        "sample_cpu_ms_per_gpu": round(sample["cpu_ms"] / 8, 3),
        "sample_wall_ms": round(sample["wall_ms"], 2),
        "nvml_rss_mib": round(sample["rss_mib"], 2),
        "samples": args.samples,
        "runs": args.runs,
        "quick_tier_ms": summary(walls["check"]),
        "quick_tier_cpu_ms": summary(cpus["check"]),
        "cli_start_ms": summary(walls["bare"]),
        "cli_start_cpu_ms": summary(cpus["bare"]),
        "checks": sorted({r["check"] for r in results}),
        "results": len(results),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(f"NVML path through the double, 8 x H100 SXM ({args.samples} samples):")
    print(
        f"  one sample of every GPU: {result['sample_cpu_ms']} ms CPU "
        f"({result['sample_cpu_ms_per_gpu']} ms per GPU), {result['sample_wall_ms']} ms wall"
    )
    print(
        f"  RSS added by pynvml, libnvidia-ml.so.1 and the first sample: "
        f"{result['nvml_rss_mib']} MiB"
    )
    q, b = result["quick_tier_ms"], result["cli_start_ms"]
    checks = len(result["checks"])  # type: ignore[arg-type]
    print(
        f"hpresil check --tier quick, {args.runs} runs ({checks} checks, {len(results)} results):"
    )
    print(f"  check          p50 {q['p50']:6.1f} ms  p95 {q['p95']:6.1f} ms wall")
    print(f"  --version      p50 {b['p50']:6.1f} ms  p95 {b['p95']:6.1f} ms wall")
    print(f"  hpresil's own part: p50 {q['p50'] - b['p50']:.1f} ms")
    out = HERE / "results" / "nvml_path.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"raw figures: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
