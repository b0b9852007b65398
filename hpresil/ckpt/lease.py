"""The generation lease: which incarnation of a job may write its checkpoint directory.

When a node stops answering, Slurm requeues its job and starts it elsewhere, but the
old instance can keep running (seen in the lab with ``proctrack/linuxproc``) and keep
writing the same checkpoint directory. The lease makes sure the old instance cannot
corrupt the checkpoint the new instance resumes from.

The lease is ``<ckpt_dir>/.hpresil/lease.json``::

    {"job_id": 812, "generation": 2, "token": "9f0c…", "node": "gpu17", "taken_at": 1.7e9}

``generation`` is Slurm's restart count (``SLURM_RESTART_COUNT``, absent on a first
run, so 0): every requeue starts a higher generation of the same job id. ``token`` is
random per take, so a holder can tell its own lease from anyone else's.

Why the old instance cannot corrupt what the new one reads:

1. The new instance takes the lease *before* it chooses the checkpoint to resume from
   (the TaskProlog takes it before the task starts; ``hpresil.job.resume_from()`` calls
   ``start()`` before scanning). Taking is one atomic rename, so from that moment the
   file names the new token.
2. The old instance calls ``check()`` (``hpresil.job.guard()``) before every write or
   deletion in the directory and again before committing a checkpoint. After the
   takeover its token is gone from the file, so it gets ``Fenced`` and stops.
3. A checkpoint becomes visible only when its manifest is renamed into place (the
   commit point, written last, atomically), and the manifest records the writer's
   lease and the time of writing. The scanner rejects a checkpoint whose manifest
   lease is this job with a lower generation, written after the current lease was
   taken (:func:`fenced`): anything the old instance commits after the takeover is
   never chosen, even if it got past its last check.
4. What remains is the window between the old instance's last check and the end of a
   save it had already started: its files can still land in the directory (and, for
   a resubmitted job with another id, a commit in that window is not told apart by
   the scanner). The node agent closes it by killing orphaned job processes when the
   node comes back. Saving each checkpoint under a new name (the step in the name)
   keeps those late files out of any checkpoint the new instance writes.

Taking is refused (``Fenced``) when the lease names the same job with a *higher*
generation: a stale instance cannot take the directory back. A different job id always
takes over: a resubmitted job continues a predecessor's run. Taking again with the same
job id and generation returns the lease already there, so the TaskProlog, the training
script and every rank of one incarnation share one lease.

Two readers, two strictnesses: a holder (:meth:`Lease.read`) needs every field, its
token above all; the scanner (:func:`current`) needs only the job, the generation and
when it was taken, and a missing or unreadable lease there means the fencing rule does
not apply (fail open: the other completeness rules still hold).

Standard library only: jobs import this inside training scripts, the TaskProlog
before every task.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hpresil.errors import HpresilError
from hpresil.fsutil import atomic_write

STATE_DIR = ".hpresil"
LEASE_FILE = "lease.json"
READ_MAX_BYTES = 1 << 16  # a lease is a small JSON record; only this much is read


class Fenced(HpresilError):
    """This instance no longer holds its checkpoint directory's lease: stop writing."""


def lease_path(ckpt_dir: Path) -> Path:
    """Where the lease of checkpoint directory ``ckpt_dir`` lives."""
    return Path(ckpt_dir) / STATE_DIR / LEASE_FILE


@dataclass(frozen=True)
class Lease:
    """One incarnation's claim on a checkpoint directory (see the module docstring)."""

    ckpt_dir: Path
    job_id: int
    generation: int
    token: str
    node: str
    taken_at: float

    @classmethod
    def read(cls, ckpt_dir: Path) -> Lease | None:
        """The lease in force, or None when there is none, it cannot be read or a field
        is missing."""
        data = _record(ckpt_dir)
        if data is None:
            return None
        job_id, generation = _int(data.get("job_id")), _int(data.get("generation"))
        if job_id is None or generation is None:
            return None
        try:
            token, node = str(data["token"]), str(data["node"])
            taken_at = float(data["taken_at"])
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
        return cls(Path(ckpt_dir), job_id, generation, token, node, taken_at)

    @classmethod
    def take(
        cls,
        ckpt_dir: Path,
        job_id: int,
        generation: int,
        node: str,
        *,
        now: float | None = None,
    ) -> Lease:
        """Claim ``ckpt_dir`` for this incarnation (atomic); ``Fenced`` if a newer
        generation of the same job holds it. Idempotent per (job_id, generation)."""
        current = cls.read(ckpt_dir)
        if current is not None and current.job_id == job_id:
            if current.generation > generation:
                raise Fenced(current.refusal(job_id, generation))
            if current.generation == generation:
                return current
        lease = cls(
            ckpt_dir=Path(ckpt_dir),
            job_id=job_id,
            generation=generation,
            token=os.urandom(8).hex(),
            node=node,
            taken_at=time.time() if now is None else now,
        )
        atomic_write(lease_path(ckpt_dir), json.dumps(lease.as_dict()) + "\n")
        lease.check()  # another taker renamed over ours in the same instant
        return lease

    def check(self) -> None:
        """Raise ``Fenced`` unless the lease file still names this lease's token."""
        current = Lease.read(self.ckpt_dir)
        if current is None:
            raise Fenced(
                f"lease {lease_path(self.ckpt_dir)} is missing or unreadable; "
                f"job {self.job_id} generation {self.generation} must stop writing"
            )
        if current.token != self.token:
            raise Fenced(current.refusal(self.job_id, self.generation))

    def holder(self) -> str:
        """Who holds the lease, for people."""
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.taken_at))
        return f"job {self.job_id} generation {self.generation} on {self.node} since {when}"

    def refusal(self, job_id: int, generation: int) -> str:
        """One line for an instance this lease fences."""
        return (
            f"{self.ckpt_dir} is held by {self.holder()}; "
            f"job {job_id} generation {generation} must stop writing"
        )

    def as_dict(self) -> dict[str, object]:
        """The file's fields (what a manifest records as its writer's lease)."""
        fields = asdict(self)
        del fields["ckpt_dir"]
        return fields


def current(ckpt_dir: Path) -> Lease | None:
    """The lease the scanner judges manifests against, or None when there is none or it
    cannot be read. Tolerant where :meth:`Lease.read` is not: a lease without a token or
    a node still counts (they are empty then); ``taken_at`` must be a JSON number."""
    data = _record(ckpt_dir)
    if data is None:
        return None
    job_id, generation = _int(data.get("job_id")), _int(data.get("generation"))
    taken_at = data.get("taken_at")
    if job_id is None or generation is None or not isinstance(taken_at, int | float):
        return None
    try:
        seconds = float(taken_at)
    except OverflowError:  # an integer too large for a float
        return None
    token, node = str(data.get("token", "")), str(data.get("node", ""))
    return Lease(Path(ckpt_dir), job_id, generation, token, node, seconds)


def fenced(lease: Lease | None, writer: dict[str, Any] | None, written_at: float) -> str | None:
    """Why a checkpoint whose manifest records ``writer`` (its lease) and
    ``written_at`` was written by a fenced instance, or None when it was not."""
    if lease is None or writer is None:
        return None
    job_id, generation = _int(writer.get("job_id")), _int(writer.get("generation"))
    if job_id != lease.job_id or generation is None:
        return None
    if generation < lease.generation and written_at > lease.taken_at:
        return (
            f"written by fenced generation {generation} after generation "
            f"{lease.generation} took over"
        )
    return None


def _record(ckpt_dir: Path) -> dict[str, Any] | None:
    """The lease file's JSON object (at most ``READ_MAX_BYTES`` read), or None when it
    is missing, unreadable or not an object."""
    try:
        with open(lease_path(ckpt_dir), "rb") as fh:
            data = json.loads(fh.read(READ_MAX_BYTES))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _int(value: object) -> int | None:
    """``value`` when it is a JSON integer (a bool is not one), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None
