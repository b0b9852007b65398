#!/usr/bin/env python3
"""A stand-in training job for the lab: steps, checkpoints, resumes.

Each step "trains" for --step-s seconds; every --every steps it writes
``step-<N>.json`` atomically (temp file, fsync, rename, fsync of the directory), so a
checkpoint is either complete or absent. On start it resumes from the newest checkpoint
that parses, and prints one machine-readable line per event:

    <epoch> start node=<node> restart=<n> resumed_from=<step>
    <epoch> step <n>
    <epoch> ckpt <n>
    <epoch> done <n>
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def newest_checkpoint(ckpt_dir: Path) -> int:
    best = 0
    for path in ckpt_dir.glob("step-*.json"):
        try:
            step = int(json.loads(path.read_text())["step"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # incomplete or foreign: never resume from it
        best = max(best, step)
    return best


def save(ckpt_dir: Path, step: int) -> None:
    tmp = ckpt_dir / f".step-{step:08d}.json.tmp"
    with tmp.open("w") as fh:
        json.dump({"step": step, "saved_at": time.time()}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, ckpt_dir / f"step-{step:08d}.json")
    dir_fd = os.open(ckpt_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def say(text: str) -> None:
    print(f"{time.time():.3f} {text}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt-dir", type=Path, required=True)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--step-s", type=float, default=0.5)
    p.add_argument("--every", type=int, default=5)
    args = p.parse_args()
    args.ckpt_dir.mkdir(parents=True, exist_ok=True)
    step = newest_checkpoint(args.ckpt_dir)
    node = os.environ.get("SLURMD_NODENAME", "?")
    restart = os.environ.get("SLURM_RESTART_COUNT", "0")
    say(f"start node={node} restart={restart} resumed_from={step}")
    while step < args.steps:
        time.sleep(args.step_s)
        step += 1
        say(f"step {step}")
        if step % args.every == 0:
            save(args.ckpt_dir, step)
            say(f"ckpt {step}")
    say(f"done {step}")


if __name__ == "__main__":
    main()
