"""Pure decisions about jobs: budgets, hangs, idle GPUs, blame. No I/O, no clock.

* **Budget.** A job may be requeued ``budget`` times (its own ``hpresil:budget=N``,
  else ``jobs.restart_budget``); the requeue that would exceed it is done *held*, and
  so is a blamed job's. A requeue already done (Slurm's restart count went up since
  the drain found the job: the answer to an earlier try was lost) is not done again.
* **Hang.** A protected job RUNNING with no sign of progress (heartbeat, progress
  file, output growth; or its start, if none yet) for ``hang_s`` is hung.
* **Idle.** A job whose allocated GPUs, on every node that reported them recently,
  stayed below ``idle.below_pct`` since ``idle_since`` for ``idle.window_s``.
* **Exclusion.** A requeued job is kept off the node it failed on and the suspects, but
  never so many that fewer usable nodes remain than the job needs: then only the
  failed node is excluded.
* **Blame.** A job that failed the same way on ``blame_nodes`` different nodes is
  the cause, not the nodes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hpresil.config import JobsConfig


def budget_of(own: int | None, cfg: JobsConfig) -> int:
    return cfg.restart_budget if own is None else own


def over_budget(restarts: int, budget: int) -> bool:
    """Whether one more requeue would exceed the budget (``restarts`` so far)."""
    return restarts >= budget


@dataclass(frozen=True)
class RequeuePlan:
    """What a requeue action does to its job, and why."""

    already_requeued: bool  # an earlier try did it and its answer was lost: not again
    hold: bool  # requeue it held: past its budget, or blamed
    why: str  # the reason recorded if it ends up held
    tell_owner: bool  # notify the owner if it ends up held (blame told them already)


def requeue_plan(
    restarts: int | None, found_at: int | None, budget: int, blamed: str | None, job_id: int
) -> RequeuePlan:
    """The plan for requeueing ``job_id``: ``restarts`` is Slurm's restart count now
    (None: Slurm does not know the job), ``found_at`` the count when the drain found it
    on the node (None: not found by a drain), ``blamed`` why the job is at fault."""
    count = restarts or 0
    return RequeuePlan(
        already_requeued=restarts is not None and found_at is not None and restarts > found_at,
        hold=over_budget(count, budget) or blamed is not None,
        why=blamed or f"job {job_id} used its restart budget ({count} of {budget}): held",
        tell_owner=blamed is None,
    )


def hang_after(own: float | None, cfg: JobsConfig) -> float:
    """Seconds without progress before the job is hung; 0 means never."""
    return cfg.hang_after_s if own is None else own


def last_sign_of_life(
    progress_at: datetime | None, started_at: datetime | None, first_seen_at: datetime
) -> datetime:
    """Progress, or the start of this incarnation when it has shown none since."""
    signs = [t for t in (progress_at, started_at) if t is not None]
    return max(signs) if signs else first_seen_at


def hung(last: datetime, hang_s: float, now: datetime) -> bool:
    return hang_s > 0 and now - last > timedelta(seconds=hang_s)


def usage_util(
    usage: Mapping[str, Mapping[str, Any]], now: datetime, fresh_s: float
) -> float | None:
    """Mean utilisation of the job's GPUs over the nodes that reported within
    ``fresh_s``, weighted by GPU count; None when no fresh node reported any."""
    total = weight = 0.0
    for entry in usage.values():
        at, util, gpus = entry.get("at"), entry.get("util"), int(entry.get("gpus") or 0)
        if util is None or gpus <= 0 or at is None:
            continue
        if now - datetime.fromisoformat(str(at)) > timedelta(seconds=fresh_s):
            continue
        total += float(util) * gpus
        weight += gpus
    return total / weight if weight else None


def next_idle_since(
    idle_since: datetime | None, util: float | None, below_pct: float, now: datetime
) -> datetime | None:
    """Keep the start of an idle stretch while it lasts; end it on any use."""
    if util is None:
        return idle_since
    if util >= below_pct:
        return None
    return idle_since or now


def idle(idle_since: datetime | None, window_s: float, now: datetime) -> bool:
    return idle_since is not None and now - idle_since >= timedelta(seconds=window_s)


def blamed(this_node: str, earlier_nodes: Collection[str], threshold: int) -> bool:
    """Whether failing here too makes ``threshold`` different nodes."""
    return len(set(earlier_nodes) | {this_node}) >= threshold


def lost_work_s(
    at: datetime, checkpoint_at: datetime | None, started_at: datetime | None
) -> float | None:
    """Work lost by stopping at ``at``: since the newest checkpoint, else since the
    incarnation started (nothing saved: all of it); None when neither is known."""
    since = checkpoint_at or started_at
    if since is None:
        return None
    return max((at - since).total_seconds(), 0.0)


def nodes_to_avoid(
    failed_on: str | None, suspects: Collection[str], usable: Collection[str], need: int
) -> set[str]:
    """The failed node and the suspects, unless that leaves fewer than ``need`` of the
    ``usable`` nodes (an empty ``usable``: not known, so no suspects); then the failed
    node alone."""
    failed = {failed_on} if failed_on else set()
    avoid = failed | set(suspects)
    if len(set(usable) - avoid) >= need:
        return avoid
    return failed
