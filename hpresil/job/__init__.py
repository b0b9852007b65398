"""hpresil's helper for jobs: resume from the newest valid checkpoint, commit
checkpoints under a generation lease, and report progress.

In a training script::

    import hpresil.job as hj

    start = hj.resume_from()          # takes the lease, then picks the checkpoint (or None)
    for step in ...:
        hj.progress(step, loss=loss)  # heartbeat, at most once a second
        if step % 500 == 0:
            hj.guard()                # Fenced if a newer instance took over
            save(f"{hj.checkpoint_dir()}/step-{step}")
            hj.mark_complete(f"{hj.checkpoint_dir()}/step-{step}", step)

The functions use one ``Job`` made from ``os.environ`` on first use; make a ``Job``
yourself for another environment. Standard library only, so it imports in a few ms.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from hpresil.ckpt.lease import Fenced, Lease
from hpresil.job.api import Job, checkpoint_dir_from, progress_file
from hpresil.job.spec import JobSpec, parse_comment

__all__ = [
    "Fenced",
    "Job",
    "JobSpec",
    "Lease",
    "checkpoint_dir",
    "checkpoint_dir_from",
    "guard",
    "mark_complete",
    "parse_comment",
    "progress",
    "progress_file",
    "restart_count",
    "resume_from",
    "start",
]


@functools.cache
def _job() -> Job:
    return Job()


def checkpoint_dir() -> Path | None:
    """The job's checkpoint directory (``HPRESIL_CKPT_DIR`` or the comment), or None."""
    return _job().ckpt_dir


def resume_from() -> Path | None:
    """The checkpoint to resume from (None on a first run); takes the lease first."""
    return _job().resume_from()


def restart_count() -> int:
    """How many times Slurm restarted this job (the lease's generation)."""
    return _job().generation


def start() -> Lease | None:
    """Take this incarnation's lease (rank 0 writes it; idempotent)."""
    return _job().start()


def guard() -> None:
    """Raise ``Fenced`` if a newer instance holds the lease; call before each write."""
    _job().guard()


def mark_complete(path: str | os.PathLike[str], step: int, *, hashes: bool = False) -> Path:
    """Commit a finished checkpoint: check the lease, then write its manifest last."""
    return _job().mark_complete(path, step, hashes=hashes)


def progress(step: int | None = None, **metrics: float) -> None:
    """Heartbeat for hang detection (rank 0, rate-limited, never raises)."""
    _job().progress(step, **metrics)
