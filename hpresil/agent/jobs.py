"""The jobs part of a report: the local jobs of a snapshot as :class:`JobObservation`s.

A job's GPU utilisation is the mean ``utilization_pct`` of the GPUs it holds here, from
the same tick's GPU samples (GPUs that gave no reading are left out; None when none
did). The controller judges idle GPUs and hangs from these; the agent only observes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pydantic import ValidationError

from hpresil.host.slurm_jobs import LocalJob, LocalJobs
from hpresil.vocab import INT32_MAX, JobObservation
from hpresil.vocab.snapshot import Snapshot

log = logging.getLogger(__name__)


def job_observations(snapshot: Snapshot) -> tuple[JobObservation, ...]:
    """One observation per job with processes here; () when the jobs were not collected."""
    local = snapshot.fact(LocalJobs)
    if local is None:
        return ()
    util = {
        g.identity.index: float(g.utilization_pct)
        for g in snapshot.gpus
        if g.utilization_pct is not None and not g.lost
    }
    found = (_observed(job, util) for job in local.jobs)
    return tuple(o for o in found if o is not None)


def _observed(job: LocalJob, util: Mapping[int, float]) -> JobObservation | None:
    """The job's observation, or None for one a report cannot carry (an id or restart
    count out of range in a process's environment): one odd job costs only itself."""
    try:
        return observation(job, util)
    except ValidationError as exc:
        log.warning("job %s left out of reports: %s", job.job_id, str(exc).splitlines()[0])
        return None


def observation(job: LocalJob, util: Mapping[int, float]) -> JobObservation:
    readings = [util[i] for i in job.gpus if i in util]
    progress, ckpt, resumed = job.progress, job.checkpoint, job.resumed_from
    return JobObservation(
        job_id=job.job_id,
        restart_count=job.restart_count,
        lead=job.lead,
        processes=len(job.processes),
        ckpt_dir=job.ckpt_dir,
        gpus=job.gpus,
        gpu_util_pct=round(sum(readings) / len(readings), 1) if readings else None,
        progress_at=progress.at if progress else None,
        progress_source=progress.source if progress else None,
        step=_int32(progress.step) if progress else None,
        checkpoint=ckpt.path if ckpt else None,
        checkpoint_step=_int32(ckpt.step) if ckpt else None,
        checkpoint_at=ckpt.committed_at if ckpt else None,
        resumed_from=resumed.path if resumed else None,
        resumed_from_step=_int32(resumed.step) if resumed else None,
        resumed_from_at=resumed.committed_at if resumed else None,
    )


def _int32(step: int | None) -> int | None:
    """A step the controller can store; a job's step outside 32 bits is left out."""
    return step if step is not None and -INT32_MAX - 1 <= step <= INT32_MAX else None
