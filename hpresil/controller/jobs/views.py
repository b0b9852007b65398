"""Ledger rows turned into :class:`~hpresil.api.JobView` for ``hpresil jobs``."""

from __future__ import annotations

from datetime import datetime
from statistics import fmean

from hpresil.api import InterruptionView, JobView
from hpresil.config import JobsConfig
from hpresil.controller.jobs import rules
from hpresil.store.models import JobInterruptionRow, JobRow


def job_view(row: JobRow, now: datetime, cfg: JobsConfig) -> JobView:
    losses = [i.lost_s for i in row.interruptions if i.lost_s is not None]
    running = row.state == "RUNNING" and row.ended_at is None
    return JobView(
        job_id=row.job_id,
        name=row.name,
        user=row.user,
        status=_status(row),
        state=row.state,
        nodes=row.nodes,
        protected=row.protected,
        ckpt_dir=row.ckpt_dir,
        restarts=row.restarts,
        budget=rules.budget_of(row.budget, cfg),
        checkpoint=row.checkpoint,
        checkpoint_step=row.checkpoint_step,
        checkpoint_at=row.checkpoint_at,
        since_checkpoint_s=(
            rules.lost_work_s(now, row.checkpoint_at, row.started_at) if running else None
        ),
        step=row.step,
        progress_at=row.progress_at,
        progress_source=row.progress_source,
        gpus=row.gpus,
        gpu_util_pct=row.gpu_util_pct,
        idle_since=row.idle_since,
        idle=running and rules.idle(row.idle_since, cfg.idle.window_s, now),
        held_reason=row.held_reason,
        blamed=row.blamed,
        interruptions=[interruption_view(i) for i in row.interruptions],
        mean_lost_s=fmean(losses) if losses else None,
        first_seen_at=row.first_seen_at,
        ended_at=row.ended_at,
    )


def interruption_view(row: JobInterruptionRow) -> InterruptionView:
    return InterruptionView(
        at=row.at,
        node=row.node,
        cause=row.cause,
        incident=row.incident_id,
        checkpoint=row.checkpoint,
        checkpoint_step=row.checkpoint_step,
        lost_s=row.lost_s,
        resumed_at=row.resumed_at,
        resumed_node=row.resumed_node,
    )


def _status(row: JobRow) -> str:
    if row.ended_at is not None:
        return "ended"
    if row.state == "HELD" or row.held_at is not None:
        return "held"
    if row.hang_signalled_at is not None:
        return "hung"
    return {"RUNNING": "running", "PENDING": "pending"}.get(row.state, "other")
