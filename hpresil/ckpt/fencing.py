"""Fencing: reject a checkpoint written by a stale instance of a job.

hpresil's job helper (``hpresil.job``) keeps a lease at ``<root>/.hpresil/lease.json``:
``{"job_id", "generation", "token", "node", "taken_at"}``; each new instance of a job
(a requeue, a restart on another node) takes it with a higher generation. An old
instance that is still alive (a node cut off from the network, a hung process that
wakes up) may go on saving. Its manifest carries its own lease; a checkpoint whose
manifest names the same job with a *lower* generation and was written *after* the
current lease was taken is such a write, and must not be resumed from.

This module only reads the lease; a missing or unreadable lease means the rule does
not apply (fail open: the other completeness rules still hold).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LEASE_PATH = Path(".hpresil") / "lease.json"


@dataclass(frozen=True)
class Lease:
    job_id: int
    generation: int
    taken_at: float


def current(root: Path) -> Lease | None:
    """The lease under ``root``, or None when there is none or it cannot be read."""
    try:
        with open(root / LEASE_PATH, "rb") as fh:
            data = json.loads(fh.read(1 << 16))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    job_id, generation, taken_at = (
        _int(data, "job_id"),
        _int(data, "generation"),
        data.get("taken_at"),
    )
    if job_id is None or generation is None or not isinstance(taken_at, int | float):
        return None
    return Lease(job_id, generation, float(taken_at))


def fenced(lease: Lease | None, writer: dict[str, Any] | None, written_at: float) -> str | None:
    """Why a checkpoint whose manifest records ``writer`` (its lease) and
    ``written_at`` was written by a fenced instance, or None when it was not."""
    if lease is None or writer is None:
        return None
    job_id, generation = _int(writer, "job_id"), _int(writer, "generation")
    if job_id != lease.job_id or generation is None:
        return None
    if generation < lease.generation and written_at > lease.taken_at:
        return (
            f"written by fenced generation {generation} after generation "
            f"{lease.generation} took over"
        )
    return None


def _int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
