"""After a pass of the remediation executor: its requeued jobs, once Slurm has them
PENDING, kept off the nodes they must avoid and (``policy.expedite_requeue``) made
eligible at once instead of after Slurm's cred_expire wait.

This runs on a short-lived side thread: Slurm takes a moment to turn a requeued job
PENDING, and the executor's other drains must not wait for it.
"""

from __future__ import annotations

import logging
import threading

from hpresil.adapters.slurm import Slurm
from hpresil.controller.policy import one_line
from hpresil.errors import HpresilError

log = logging.getLogger(__name__)

# per requeued job: (the nodes to keep it off, earlier exclusions of ours to lift)
Requeued = dict[int, tuple[set[str], set[str]]]


def in_background(slurm: Slurm, jobs: Requeued, start_now: bool) -> None:
    """:func:`expedite` ``jobs`` on a side thread; nothing when there are none."""
    if jobs:
        threading.Thread(
            target=expedite, args=(slurm, jobs, start_now), name="hpresil-expedite", daemon=True
        ).start()


def expedite(slurm: Slurm, jobs: Requeued, start_now: bool) -> None:
    """Update ``jobs`` once pending: their exclusions and, with ``start_now``, their
    start time. Nothing to do (no exclusions, no start now) asks Slurm nothing; a
    failure is logged."""
    if not start_now and not any(a or d for a, d in jobs.values()):
        return
    exclude = {j: avoid for j, (avoid, _) in jobs.items()}
    drop = {j: lift for j, (_, lift) in jobs.items()}
    try:
        done = slurm.expedite(list(jobs), exclude=exclude, drop=drop, start_now=start_now)
        log.info(
            "requeued jobs updated once pending: %s",
            ", ".join(
                f"{j} (avoiding {','.join(sorted(exclude[j])) or '-'})" for j in sorted(done)
            ),
        )
    except HpresilError as exc:
        log.warning("could not expedite jobs %s: %s", jobs, one_line(exc))
