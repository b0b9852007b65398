#!/usr/bin/env python3
"""A stand-in training job for the lab: steps, real checkpoint layouts, resumes.

It uses hpresil's job helper as a real training script would (``hpresil.job``): the
resume point comes from the TaskProlog (``HPRESIL_RESUME_FROM``) or the helper's own
look-up, the lease is taken before it is used, every save is guarded (a fenced old
instance stops instead of writing) and committed with a manifest, and each step is a
heartbeat. Checkpoints are written by ``layouts.py`` in the chosen framework's own
order (Hugging Face ``checkpoint-N/``, DeepSpeed ``global_stepN/`` + ``latest``, ...),
one operation at a time over ``--save-s`` seconds, so a fault can land mid-save.

One machine-readable line per event (epoch first):

    <t> start node=<node> restart=<n> resumed_from=<step> path=<checkpoint or ->
    <t> step <n>
    <t> ckpt <n> <path>
    <t> half <n>              (--half-at: the save stopped half way, as if the node died)
    <t> hang <n>              (--hang-at: no more progress from here)
    <t> signal <NAME>         (the hang signal hpresil sends before requeueing)
    <t> fenced <n> <why>      (a newer instance holds the checkpoint directory: exit 3)
    <t> done <n>
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import layouts

from hpresil.ckpt import scan
from hpresil.job import Fenced, Job


def say(text: str) -> None:
    print(f"{time.time():.3f} {text}", flush=True)


def resumed_step(job: Job, ckpt_dir: Path) -> tuple[int, Path | None]:
    path = job.resume_from()
    if path is None:
        return 0, None
    for found in scan(ckpt_dir):
        if found.path == path and found.step is not None:
            return found.step, path
    return 0, path


def save(job: Job, fmt: str, ckpt_dir: Path, step: int, save_s: float, half: bool) -> Path | None:
    """One checkpoint in the framework's write order; None if stopped half way."""
    job.guard()  # before the first byte: a fenced instance writes nothing
    lease = job.start()
    ops, result = layouts.operations(fmt, step, lease=None if lease is None else lease.as_dict())
    if half:
        ops = ops[: max(1, len(ops) // 2)]
    for op in ops:
        op.apply(ckpt_dir)
        if save_s:
            time.sleep(save_s / len(ops))
    if half:
        return None
    path = ckpt_dir / result
    if fmt != "hpresil":  # the framework committed; hpresil's manifest (with the lease) last
        job.mark_complete(path, step)
    return path


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt-dir", type=Path, help="default: HPRESIL_CKPT_DIR or the comment")
    p.add_argument("--format", default="hf", choices=layouts.FORMATS)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--step-s", type=float, default=0.5)
    p.add_argument("--every", type=int, default=5)
    p.add_argument("--save-s", type=float, default=0.0, help="how long one save takes")
    p.add_argument("--half-at", type=int, help="at this step, stop half way through the save")
    p.add_argument("--hang-at", type=int, help="at this step, stop making progress")
    args = p.parse_args()
    job = Job()
    ckpt_dir = args.ckpt_dir or job.ckpt_dir
    if ckpt_dir is None:
        say("error no checkpoint directory (--ckpt-dir, HPRESIL_CKPT_DIR or the comment)")
        return 2
    if job.ckpt_dir is None:
        job = Job({**os.environ, "HPRESIL_CKPT_DIR": str(ckpt_dir)})
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(
        signal.SIGUSR1, lambda signum, frame: say(f"signal {signal.Signals(signum).name}")
    )
    step, path = resumed_step(job, ckpt_dir)
    say(f"start node={job.node} restart={job.generation} resumed_from={step} path={path or '-'}")
    try:
        while step < args.steps:
            if args.hang_at is not None and step >= args.hang_at and job.generation == 0:
                say(f"hang {step}")
                while True:
                    time.sleep(3600)
            time.sleep(args.step_s)
            step += 1
            job.progress(step)
            say(f"step {step}")
            if step % args.every:
                continue
            half = args.half_at == step and job.generation == 0
            saved = save(job, args.format, ckpt_dir, step, args.save_s, half)
            if saved is None:
                say(f"half {step}")
                while True:  # as good as dead: no progress, no more writes
                    time.sleep(3600)
            say(f"ckpt {step} {saved}")
    except Fenced as exc:
        say(f"fenced {step} {exc}")
        return 3
    say(f"done {step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
