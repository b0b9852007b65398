"""Queueing what hpresil does to a job: hold, signal, requeue, cancel, notify.

Each becomes an action row run by the remediation executor, like drains, so it is
retried on a Slurm (or webhook) failure and recorded in the incident ledger.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from hpresil.adapters.slurm import SlurmJob
from hpresil.config import JobsConfig
from hpresil.controller.policy import clip
from hpresil.store import repo
from hpresil.store.models import ActionRow, IncidentRow, JobRow


def event(row: JobRow, kind: str, why: str, now: datetime, **extra: Any) -> dict[str, Any]:
    """The webhook body: what happened to which job, and why."""
    return {
        "event": kind,
        "job_id": row.job_id,
        "name": row.name,
        "user": row.user,
        "nodes": row.nodes,
        "restarts": row.restarts,
        "checkpoint": row.checkpoint,
        "why": why,
        "at": now.isoformat(),
        **extra,
    }


def notify(
    s: Session,
    row: JobRow,
    kind: str,
    why: str,
    now: datetime,
    cfg: JobsConfig,
    incident: IncidentRow | None = None,
    **extra: Any,
) -> ActionRow | None:
    """A webhook event for the job's owner; nothing when no webhook is configured."""
    if not cfg.webhook_url:
        return None
    return repo.add_action(
        s,
        kind="notify",
        target=str(row.job_id),
        why=clip(f"{kind}: {why}", 500),
        now=now,
        incident=incident,
        payload=event(row, kind, why, now, **extra),
    )


def hold(
    s: Session,
    row: JobRow,
    why: str,
    now: datetime,
    cfg: JobsConfig,
    incident: IncidentRow | None = None,
) -> ActionRow:
    """Hold the job (a running one is requeued held) and tell its owner."""
    action = repo.add_action(
        s, kind="hold", target=str(row.job_id), why=why, now=now, incident=incident
    )
    notify(s, row, "job_held", why, now, cfg, incident)
    return action


def queue_requeue(
    s: Session, incident: IncidentRow, job: SlurmJob, cause: str, now: datetime
) -> ActionRow | None:
    """The requeue of a job the drain for ``incident`` found running on its node, with
    the job's incident_jobs row; nothing when the incident has it already."""
    if repo.incident_job(s, incident.id, job.job_id, job.submit_time) is not None:
        return None
    affected = repo.add_affected_job(
        s, incident, job.job_id, job.submit_time, job.name, job.restart_count
    )
    action = repo.add_action(
        s,
        kind="requeue",
        target=str(job.job_id),
        why=f"job {job.job_id} ({job.name}) was running on {incident.node} when it was "
        f"drained for incident #{incident.id}: {cause}",
        now=now,
        incident=incident,
    )
    action.incident_job = affected
    return action
