"""What a training script calls: where to resume, the lease, commits and heartbeats.

Everything is read from the job's environment once, when the ``Job`` is made:

* ``SLURM_JOB_ID`` — none outside Slurm, and then there is no lease and no heartbeat
  file unless ``HPRESIL_PROGRESS_FILE`` names one;
* ``SLURM_RESTART_COUNT`` (else ``HPRESIL_RESTART_COUNT``, else 0) — the generation;
* ``RANK`` (set by torchrun and friends), else ``SLURM_PROCID``, else 0 — only rank 0
  takes the lease, commits and writes heartbeats (torchrun's workers all inherit one
  ``SLURM_PROCID``, so ``RANK`` comes first);
* ``HPRESIL_CKPT_DIR``, else the ``hpresil:ckpt=`` token of ``SLURM_JOB_COMMENT`` when
  Slurm put the comment in the environment (22.05 does so only for Prolog/Epilog; the
  TaskProlog looks the comment up and exports ``HPRESIL_CKPT_DIR`` for the job);
* ``HPRESIL_RESUME_FROM`` — the TaskProlog's choice at task start;
* ``SLURMD_NODENAME`` (else the host name) — recorded in the lease and heartbeats.

Standard library only (plus ``hpresil.ckpt``): this runs inside training scripts and
the TaskProlog.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from hpresil.ckpt.lease import STATE_DIR, Fenced, Lease
from hpresil.fsutil import atomic_write
from hpresil.job.spec import parse_comment

Env = Mapping[str, str]
PROGRESS_MIN_INTERVAL_S = 1.0  # heartbeats closer than this are dropped unless the step moved


def progress_file(job_id: int, ckpt_dir: Path | None, env: Env) -> Path | None:
    """Where job ``job_id``'s heartbeat lives: ``$HPRESIL_PROGRESS_FILE``, else
    ``<ckpt_dir>/.hpresil/progress-<job_id>.json``, else None (no heartbeat).

    The one place that knows the path: the node agent calls it with a process's
    environment to find that job's heartbeat. A relative ``HPRESIL_PROGRESS_FILE`` is
    relative to the job's working directory (``/proc/<pid>/cwd`` for the agent).
    """
    explicit = env.get("HPRESIL_PROGRESS_FILE")
    if explicit:
        return Path(explicit)
    if ckpt_dir is None:
        return None
    return Path(ckpt_dir) / STATE_DIR / f"progress-{job_id}.json"


def restart_count(env: Env) -> int:
    """Slurm's restart count for this job (0 on a first run, or when unreadable)."""
    for name in ("SLURM_RESTART_COUNT", "HPRESIL_RESTART_COUNT"):
        value = _int_or_none(env.get(name))
        if value is not None and value >= 0:
            return value
    return 0


def checkpoint_dir_from(env: Env) -> Path | None:
    """``HPRESIL_CKPT_DIR``, else the comment's ``ckpt=`` when the comment is in ``env``."""
    explicit = env.get("HPRESIL_CKPT_DIR")
    if explicit:
        return Path(explicit).absolute()
    spec, _ = parse_comment(env.get("SLURM_JOB_COMMENT", ""))
    return spec.ckpt_dir


class Job:
    """One task of one incarnation of a job, as its environment describes it."""

    def __init__(self, env: Env | None = None, *, clock: Callable[[], float] = time.time) -> None:
        env = os.environ if env is None else env
        self.job_id = _int_or_none(env.get("SLURM_JOB_ID"))
        self.generation = restart_count(env)
        self.rank = _int_or_none(env.get("RANK") or env.get("SLURM_PROCID")) or 0
        self.node = env.get("SLURMD_NODENAME") or os.uname().nodename.split(".")[0]
        self.ckpt_dir = checkpoint_dir_from(env)
        self.resume_hint = env.get("HPRESIL_RESUME_FROM") or None
        self.progress_path = _heartbeat_path(self.job_id, self.ckpt_dir, env)
        self._clock = clock
        self._born = clock()
        self._lease: Lease | None = None
        self._last_beat: tuple[int | None, float] | None = None
        self._beat_failed = False

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def start(self) -> Lease | None:
        """Take the lease for this incarnation (rank 0; other ranks adopt it once rank 0
        or the TaskProlog has taken it). Idempotent. None outside Slurm or without a
        checkpoint directory. ``Fenced`` when a newer generation already holds it."""
        if self._lease is not None or self.job_id is None or self.ckpt_dir is None:
            return self._lease
        if self.is_writer:
            self._lease = Lease.take(
                self.ckpt_dir, self.job_id, self.generation, self.node, now=self._clock()
            )
            return self._lease
        current = Lease.read(self.ckpt_dir)
        if current is not None and self._is_ours(current):
            self._lease = current
        return self._lease

    def _is_ours(self, lease: Lease) -> bool:
        return lease.job_id == self.job_id and lease.generation == self.generation

    def guard(self) -> None:
        """Raise ``Fenced`` if a newer instance took the checkpoint directory. Call it
        before every write or deletion there, on every rank that writes."""
        lease = self.start()
        if lease is not None:
            lease.check()
            return
        if self.job_id is None or self.ckpt_dir is None:
            return
        current = Lease.read(self.ckpt_dir)  # a rank other than 0, before rank 0 took it
        if current is not None and self._superseded_by(current):
            raise Fenced(current.refusal(self.job_id, self.generation))

    def _superseded_by(self, current: Lease) -> bool:
        if current.job_id == self.job_id:
            return current.generation > self.generation
        return current.taken_at > self._born  # another job took over after we started

    def resume_from(self) -> Path | None:
        """The checkpoint to resume from, or None to start fresh. Takes the lease first,
        so that nothing an older instance commits from now on can be chosen."""
        self.start()
        if self.ckpt_dir is None or not self.ckpt_dir.is_dir():
            return None  # a first run: nothing saved yet (rank 0's start() creates it)
        from hpresil.ckpt import latest, manifest  # the scanner only where it is used

        if self.resume_hint and manifest.verify(Path(self.resume_hint)) is None:
            return Path(self.resume_hint)
        found = latest(self.ckpt_dir)
        return None if found is None else found.path

    def mark_complete(
        self, path: str | os.PathLike[str], step: int, *, hashes: bool = False
    ) -> Path:
        """Commit the checkpoint at ``path`` (rank 0, after every rank has finished
        writing it): check the lease, then write its manifest atomically, last. The
        manifest records this lease and its own ``written_at``, which is what lets the
        scanner reject a commit that slipped in after a newer instance took over."""
        self.guard()
        lease = None if self._lease is None else self._lease.as_dict()
        from hpresil.ckpt import manifest

        return manifest.write(Path(path), step, hashes=hashes, lease=lease)

    def progress(self, step: int | None = None, **metrics: float) -> None:
        """Heartbeat (rank 0): at most one write a second unless ``step`` moved. Never
        raises: a job must not die because its heartbeat could not be written."""
        if not self.is_writer or self.progress_path is None:
            return
        now = self._clock()
        if self._last_beat is not None:
            last_step, last_at = self._last_beat
            if step == last_step and 0 <= now - last_at < PROGRESS_MIN_INTERVAL_S:
                return
        self._last_beat = (step, now)
        try:
            record = {
                "job_id": self.job_id,
                "step": step,
                "at": now,
                "generation": self.generation,
                "node": self.node,
                "metrics": {name: _finite(value) for name, value in metrics.items()},
            }
            atomic_write(self.progress_path, json.dumps(record) + "\n", sync=False)
        except (OSError, TypeError, ValueError) as exc:
            self._warn_once(f"heartbeat to {self.progress_path} failed: {exc}")

    def _warn_once(self, message: str) -> None:
        if self._beat_failed:
            return
        self._beat_failed = True
        import logging  # only on failure: the happy path stays import-light

        logging.getLogger("hpresil.job").warning(
            "hpresil: %s (further failures not logged)", message
        )


def _heartbeat_path(job_id: int | None, ckpt_dir: Path | None, env: Env) -> Path | None:
    """Outside Slurm there is no job id to name the file after: only an explicit one."""
    return progress_file(job_id or 0, ckpt_dir if job_id is not None else None, env)


def _finite(value: float) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
