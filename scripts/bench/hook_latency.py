#!/usr/bin/env python3
"""Quick-tier hook latency: ``hpresil-hook check`` (Python, stdlib only) against the
same checks in NHC-style bash, run alternately, N times each, on one healthy node
setup in a temporary folder (8 GPU device files, a fresh "ok" verdict, the root
mount, a socket standing in for munge's). Prints p50/p95 wall times and the ratio;
writes scripts/bench/results/hook_latency.json."""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOOK = HERE.parent.parent / "slurm-plugins" / "hpresil-hook"
NHC = HERE / "nhc_style_checks.sh"


def setup(root: Path) -> tuple[list[str], list[str], dict[str, str]]:
    (root / "dev").mkdir()
    for i in range(8):
        (root / "dev" / f"nvidia{i}").touch()
    verdict = root / "node1.verdict.json"
    verdict.write_text(json.dumps({"node": "node1", "status": "ok", "results": []}))
    sock_path = root / "munge.socket.2"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    (root / "hpresil.toml").write_text(
        f'[agent]\ncache_file = "{root}/{{node}}.verdict.json"\n'
        "[agent.gpu]\nexpected_count = 8\n"
        f'[hooks]\ngpu_devices = "{root}/dev/nvidia[0-9]*"\nmounts = ["/"]\n'
        f'munge_socket = "{sock_path}"\n'
    )
    env = {
        "HPRESIL_CONFIG": str(root / "hpresil.toml"),
        "SLURMD_NODENAME": "node1",
        "PATH": os.environ["PATH"],
    }
    hook = ["/usr/bin/python3", "-I", "-S", str(HOOK), "check"]  # as the wrappers run it
    nhc = ["bash", str(NHC), str(verdict), f"{root}/dev/nvidia[0-9]*", "8", str(sock_path), "/"]
    return hook, nhc, env


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or done.stdout.strip() != "ok":
        raise SystemExit(f"{argv[0]} reported a problem: {done.stdout}{done.stderr}")
    return elapsed * 1000


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hook, nhc, env = setup(Path(tmp))
        times: dict[str, list[float]] = {"hook": [], "nhc_style": []}
        for _ in range(args.runs):  # alternate, so both see the same machine noise
            times["hook"].append(timed(hook, env))
            times["nhc_style"].append(timed(nhc, env))
    summary = {
        k: {"p50_ms": round(pct(v, 0.5), 1), "p95_ms": round(pct(v, 0.95), 1)}
        for k, v in times.items()
    }
    ratio = summary["nhc_style"]["p50_ms"] / summary["hook"]["p50_ms"]
    print(f"{args.runs} runs each, wall time including interpreter start:")
    print(f"{'':12s}{'p50 ms':>9s}{'p95 ms':>9s}")
    for k, v in summary.items():
        print(f"{k:12s}{v['p50_ms']:9.1f}{v['p95_ms']:9.1f}")
    print(f"hpresil-hook p50 target <= 150 ms; NHC-style bash / hpresil-hook = {ratio:.2f}x")
    out = HERE / "results" / "hook_latency.json"
    out.write_text(
        json.dumps(
            {
                "runs": args.runs,
                "summary": summary,
                "nhc_over_hook_p50": round(ratio, 2),
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            indent=2,
        )
    )
    print(f"raw figures: {out.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
