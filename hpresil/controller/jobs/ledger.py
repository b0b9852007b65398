"""The job ledger: what agents and Slurm say of each job, kept per job.

Agents report the jobs running on their node (:class:`~hpresil.vocab.JobObservation`):
progress, the newest complete checkpoint (from the job's first node), and the
utilisation of its GPUs. Slurm says the rest (state, nodes, restart count, comment)
through :func:`sync_job`. A job is *protected* when it named a checkpoint directory,
in its comment (``hpresil:ckpt=DIR``) or its environment (``HPRESIL_CKPT_DIR``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from hpresil.adapters.slurm import SlurmJob
from hpresil.config import JobsConfig
from hpresil.controller.jobs import actions, rules
from hpresil.controller.policy import clip
from hpresil.job.spec import parse_comment
from hpresil.store import jobrepo, serial
from hpresil.store.models import ActionRow, IncidentRow, JobInterruptionRow, JobRow
from hpresil.vocab import JobObservation
from hpresil.vocab.actions import RequeueOutcome

USAGE_FRESH_FACTOR = 3.0  # a node's usage counts for 3 heartbeats (of the idle window's scale)


def observe(
    s: Session,
    node: str,
    jobs: Iterable[JobObservation],
    now: datetime,
    cfg: JobsConfig,
    *,
    fresh_s: float,
) -> list[JobRow]:
    """Record a report's job observations from ``node``; the rows touched (each job's
    other nodes' reports wait meanwhile: :func:`hpresil.store.serial.jobs`)."""
    seen_here = sorted(jobs, key=lambda j: j.job_id)
    serial.jobs(s, (j.job_id for j in seen_here))
    rows = []
    for seen in seen_here:
        row = jobrepo.ensure_job(s, seen.job_id, now, now)
        note_observation(row, node, seen, now, cfg, fresh_s=fresh_s)
        rows.append(row)
    return rows


def note_observation(
    row: JobRow, node: str, seen: JobObservation, now: datetime, cfg: JobsConfig, *, fresh_s: float
) -> None:
    row.last_seen_at = now
    row.state = row.state or "RUNNING"  # its processes run here; Slurm's word comes later
    if seen.restart_count > row.restarts:
        start_incarnation(row, seen.restart_count, None)
    if seen.ckpt_dir:
        row.ckpt_dir = seen.ckpt_dir
        row.protected = True
    if seen.progress_at is not None and (
        row.progress_at is None or seen.progress_at > row.progress_at
    ):
        row.progress_at = seen.progress_at
        row.progress_source = seen.progress_source
    if seen.step is not None:
        row.step = seen.step
    if seen.resumed_from is not None:
        note_resumed_from(row, seen)
    if seen.checkpoint is not None:
        row.checkpoint = seen.checkpoint
        row.checkpoint_step = seen.checkpoint_step
        row.checkpoint_at = seen.checkpoint_at
    usage: dict[str, Any] = dict(row.usage or {})
    usage[node] = {
        "util": seen.gpu_util_pct,
        "gpus": len(seen.gpus),
        "at": now.isoformat(),
    }
    row.usage = usage
    row.gpus = sum(int(u.get("gpus") or 0) for u in usage.values())
    util = rules.usage_util(usage, now, fresh_s)
    row.gpu_util_pct = util
    row.idle_since = rules.next_idle_since(row.idle_since, util, cfg.idle.below_pct, now)


def note_resumed_from(row: JobRow, seen: JobObservation) -> None:
    """The interruption this incarnation came back from learns what it resumed from
    (the TaskProlog's choice, as the agent found it in the job's environment), so its
    lost work is exact: from that checkpoint's commit to the stop. Until then it holds
    the controller's estimate, from the newest checkpoint agents had reported."""
    for stop in reversed(row.interruptions):
        if stop.restarts_before < seen.restart_count:
            stop.checkpoint = seen.resumed_from
            if seen.resumed_from_step is not None:
                stop.checkpoint_step = seen.resumed_from_step
            if seen.resumed_from_at is not None:
                stop.lost_s = max((stop.at - seen.resumed_from_at).total_seconds(), 0.0)
            return


def sync_job(row: JobRow, job: SlurmJob, now: datetime) -> list[str]:
    """Record what Slurm says of the job; one-line problems with its comment."""
    spec, problems = parse_comment(job.comment)
    row.name, row.user = job.name, job.user
    row.state = "HELD" if job.held else job.state
    if job.nodes:
        row.nodes = ",".join(job.nodes)
    if spec.ckpt_dir is not None:
        row.ckpt_dir = str(spec.ckpt_dir)
        row.protected = True
    row.budget, row.hang_s = spec.budget, spec.hang_s
    if job.restart_count > row.restarts:
        start_incarnation(row, job.restart_count, job.start_time)
    if job.running and job.start_time is not None:
        row.started_at = job.start_time
    row.last_seen_at = now
    return problems


def start_incarnation(row: JobRow, restarts: int, started_at: datetime | None) -> None:
    """A new incarnation: progress, hang and usage state belong to the old one."""
    row.restarts = restarts
    row.started_at = started_at
    row.progress_at = None
    row.progress_source = None
    row.hang_signalled_at = None
    row.usage = None
    row.idle_since = None
    row.idle_acted_at = None


def interrupted(
    row: JobRow,
    now: datetime,
    node: str | None,
    cause: str,
    restarts: int,
    incident: IncidentRow | None,
) -> JobInterruptionRow:
    """Record that the job was stopped ``now``, and the work it lost."""
    stop = JobInterruptionRow(
        incident_id=incident.id if incident is not None else None,
        at=now,
        node=node,
        cause=clip(cause, 500),
        restarts_before=restarts,
        checkpoint=row.checkpoint,
        checkpoint_step=row.checkpoint_step,
        lost_s=rules.lost_work_s(now, row.checkpoint_at, row.started_at),
    )
    row.interruptions.append(stop)
    return stop


def held(row: JobRow, why: str, now: datetime) -> None:
    """Record that the job is held ``now``, and why."""
    row.held_at = now
    row.held_reason = why
    row.state = "HELD"


def note_requeue(
    s: Session,
    action: ActionRow,
    job: SlurmJob | None,
    outcome: RequeueOutcome,
    plan: rules.RequeuePlan,
    now: datetime,
    cfg: JobsConfig,
) -> JobRow | None:
    """Record a requeue action's outcome in its job's ledger row, if the job has one:
    Slurm's name and user for it, the interruption when the job was stopped, the hold
    (with the owner's notice, unless ``plan`` says they were told) when it is held."""
    row = jobrepo.active_job(s, int(action.target))
    if row is None:
        return None
    if job is not None:
        row.name, row.user = job.name, job.user
    if outcome in (RequeueOutcome.REQUEUED, RequeueOutcome.HELD):
        restarts = job.restart_count if job else 0
        interrupted(row, now, failed_on(action), action.why, restarts, action.incident)
    if outcome is RequeueOutcome.HELD:
        held(row, plan.why, now)
        if plan.tell_owner:
            actions.notify(s, row, "job_held", plan.why, now, cfg, action.incident)
    return row


def exclusions(
    s: Session,
    row: JobRow | None,
    job: SlurmJob | None,
    failed_on: str | None,
    usable: set[str],
    cfg: JobsConfig,
    now: datetime,
) -> tuple[set[str], set[str]]:
    """For a requeued job: the nodes to keep it off (the failed node and the suspects of
    the last ``jobs.suspect_window_h``, as far as :func:`rules.nodes_to_avoid` allows),
    recorded in its ledger ``row``, and the exclusions an earlier requeue added that no
    longer apply."""
    suspects = jobrepo.suspect_nodes(s, now - timedelta(hours=cfg.suspect_window_h))
    need = len(job.nodes) if job is not None and job.nodes else 1
    avoid = rules.nodes_to_avoid(failed_on, suspects, usable, need)
    earlier = set(row.excluded or []) if row is not None else set()
    if row is not None:
        row.excluded = sorted(avoid)
    return avoid, earlier - avoid


def failed_on(action: ActionRow) -> str | None:
    """The node whose incident the action is for, if it is for one."""
    return action.incident.node if action.incident is not None else None
