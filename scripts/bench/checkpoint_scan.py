#!/usr/bin/env python3
"""Time to find the newest complete checkpoint among 10,000: ``hpresil checkpoint
latest DIR`` as a subprocess (interpreter start and the whole CLI import included),
the library alone in a fresh interpreter (what the Slurm TaskProlog pays), and the
in-process ``latest()`` call. Target: the CLI <= 1 s.

Each directory holds COUNT real checkpoints written by scripts/lab-jobs/layouts.py in
their framework's write order: hpresil manifests (``step-N/``), HF Trainer
(``checkpoint-N/``) and DeepSpeed (``global_stepN/`` + ``latest``); one more HF
directory has its 5 newest saves cut off at random points, so ``latest`` must judge
and refuse them before it finds the 6th. Directories are built once under --dir and
reused. Prints median and p95 over --runs runs each; writes
scripts/bench/results/checkpoint_scan.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
HPRESIL = REPO / ".venv" / "bin" / "hpresil"
PYTHON = REPO / ".venv" / "bin" / "python"
BROKEN = 5
LIBRARY = "import sys; from hpresil.ckpt import latest; print(latest(sys.argv[1]).path)"


def load_layouts() -> ModuleType:
    spec = importlib.util.spec_from_file_location("layouts", REPO / "scripts/lab-jobs/layouts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(layouts: ModuleType, base: Path, count: int) -> dict[str, tuple[Path, int]]:
    """Each case's directory and the step ``latest`` must answer."""
    cases = {
        "hpresil": (base / f"hpresil-{count}", count),
        "hf": (base / f"hf-{count}", count),
        "deepspeed": (base / f"deepspeed-{count}", count),
        "hf-5-newest-broken": (base / f"hf-broken-{count}", count - BROKEN),
    }
    rng = random.Random(count)
    for name, (root, _) in cases.items():
        done = root / ".built"
        if done.exists():
            continue
        fmt = name.split("-")[0]
        started = time.perf_counter()
        for step in range(1, count + 1):
            broken = name.endswith("broken") and step > count - BROKEN
            stop = rng.randrange(len(layouts.plan(fmt)) - 1) + 1 if broken else None
            layouts.write(fmt, root, step, stop_after=stop, world_size=2)
        done.touch()
        print(f"built {name}: {count} checkpoints in {time.perf_counter() - started:.0f} s")
    return cases


def timed(argv: list[str], env: dict[str, str], expect: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or expect not in done.stdout:
        raise SystemExit(f"{argv} answered {done.returncode}: {done.stdout}{done.stderr}")
    return elapsed * 1000


def in_process(root: Path, expect: str) -> float:
    from hpresil.ckpt import latest

    start = time.perf_counter()
    found = latest(root)
    elapsed = time.perf_counter() - start
    if found is None or found.path.name != expect:
        raise SystemExit(f"latest({root}) = {found}, expected {expect}")
    return elapsed * 1000


def summary(values: list[float]) -> dict[str, float]:
    p95 = statistics.quantiles(values, n=100, method="inclusive")[94]
    return {"median_ms": round(statistics.median(values), 1), "p95_ms": round(p95, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "hpresil-bench")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    cases = build(load_layouts(), args.dir, args.count)
    config = args.dir / "empty.toml"
    config.write_text("")  # the root command reads a config; keep the site's out of it
    env = {"PATH": os.environ["PATH"], "HPRESIL_CONFIG": str(config)}
    results: dict[str, dict[str, dict[str, float]]] = {}
    baseline = [timed([str(HPRESIL), "--version"], env, "hpresil") for _ in range(args.runs)]
    for name, (root, step) in cases.items():
        expect = expected_name(name, step)
        cli, lib, call = [], [], []
        for _ in range(args.runs):  # alternate, so all three see the same machine noise
            cli.append(
                timed([str(HPRESIL), "checkpoint", "latest", str(root)], env, f"/{expect}\t")
            )
            lib.append(timed([str(PYTHON), "-c", LIBRARY, str(root)], env, f"/{expect}\n"))
            call.append(in_process(root, expect))
        results[name] = {
            "cli": summary(cli),
            "library_fresh_python": summary(lib),
            "in_process": summary(call),
        }
    report(args, results, summary(baseline))
    return 0


def expected_name(case: str, step: int) -> str:
    return {"hpresil": f"step-{step}", "deepspeed": f"global_step{step}"}.get(
        case, f"checkpoint-{step}"
    )


def report(
    args: argparse.Namespace,
    results: dict[str, dict[str, dict[str, float]]],
    base: dict[str, float],
) -> None:
    print(f"{args.count} checkpoints per directory, {args.runs} runs, wall time:")
    print(
        f"{'':22s}{'CLI p50':>9s}{'p95':>8s}{'lib p50':>9s}{'p95':>8s}"
        f"{'call p50':>10s}{'p95':>8s}  ms"
    )
    for name, r in results.items():
        c, lib, call = r["cli"], r["library_fresh_python"], r["in_process"]
        print(
            f"{name:22s}{c['median_ms']:9.1f}{c['p95_ms']:8.1f}{lib['median_ms']:9.1f}"
            f"{lib['p95_ms']:8.1f}{call['median_ms']:10.1f}{call['p95_ms']:8.1f}"
        )
    print(
        f"`hpresil --version` alone (CLI start-up): p50 {base['median_ms']:.1f} ms,"
        f" p95 {base['p95_ms']:.1f} ms"
    )
    worst = max(r["cli"]["p95_ms"] for r in results.values())
    print(f"target: hpresil checkpoint latest <= 1000 ms; worst CLI p95 {worst:.1f} ms")
    out = HERE / "results" / "checkpoint_scan.json"
    record = {
        "count": args.count,
        "runs": args.runs,
        "results": results,
        "cli_startup_version": base,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"raw figures: {out.relative_to(REPO)}")


if __name__ == "__main__":
    raise SystemExit(main())
