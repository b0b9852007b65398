"""Telling a job's fault from a node's (taken in with each report).

Two rules, from what large fleets see (a job with a bad kernel or a power pattern
takes down GPU after GPU; a user's bug raises application XIDs on any node):

* **Same failure on ``jobs.blame_nodes`` nodes.** A fault that would drain this node,
  while job J runs here, when J was running on ``blame_nodes - 1`` other nodes that
  failed the same way (category and XID) within ``jobs.blame_window_days``: J is the
  cause. The node is not drained; J is held and its owner told.
* **Only application XIDs.** A protected job whose GPU raised an application-class
  XID (13, 31, 43, ...; the table's ``app`` category), in a report with no hardware
  fault: held and told (``jobs.hold_on_app_xid``). Requeueing it would only repeat it.

Either way a *job* incident records it (``job_id`` set, not hardware: no node MTTF).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from hpresil.config import JobsConfig
from hpresil.controller.identity import set_identity
from hpresil.controller.jobs import actions, rules
from hpresil.controller.policy import IncidentIdentity, category_of, describe, identity_of
from hpresil.store import jobrepo, repo
from hpresil.store.models import RESOLVED, IncidentRow, JobRow
from hpresil.vocab import Category, CheckResult, JobObservation


@dataclass(frozen=True)
class Culprit:
    job: JobRow
    identity: IncidentIdentity  # the failure it is blamed for
    why: str


def same_failure(
    s: Session,
    node: str,
    fault: IncidentIdentity,
    here: Sequence[JobRow],
    cfg: JobsConfig,
    now: datetime,
) -> list[Culprit]:
    """Jobs on ``node`` that failed like ``fault`` on enough other nodes to be the cause."""
    since = now - timedelta(days=cfg.blame_window_days)
    found = []
    for row in here:
        earlier = jobrepo.failure_nodes(
            s, row.job_id, category=fault.category, xid=fault.xid, since=since
        )
        earlier.discard(node)
        if rules.blamed(node, earlier, cfg.blame_nodes):
            nodes = ", ".join(sorted(earlier | {node}))
            what = fault.category.value + (f" xid {fault.xid}" if fault.xid is not None else "")
            why = (
                f"job {row.job_id} failed the same way ({what}) on "
                f"{len(earlier) + 1} nodes ({nodes}): the job's fault, not the nodes'"
            )
            found.append(Culprit(row, fault, why))
    return found


def app_xids(
    results: Sequence[CheckResult],
    seen: Mapping[int, JobObservation],
    rows: Mapping[int, JobRow],
    cfg: JobsConfig,
) -> list[Culprit]:
    """Protected jobs whose GPUs raised application XIDs in a report without a
    hardware fault; each job once."""
    if not cfg.hold_on_app_xid or any(r.is_fault and category_of(r).is_hardware for r in results):
        return []
    found: dict[int, Culprit] = {}
    for result in results:
        if result.xid is None or category_of(result) is not Category.APP:
            continue
        for job_id in _jobs_on_gpu(result, seen):
            row = rows.get(job_id)
            if row is None or not row.protected or row.blamed or job_id in found:
                continue
            where = "" if result.gpu is None else f" on GPU {result.gpu.index}"
            why = (
                f"job {job_id} raised application XID {result.xid}{where}: "
                "the job's fault, not the node's"
            )
            found[job_id] = Culprit(row, identity_of(result), why)
    return list(found.values())


def record(s: Session, node: str, culprit: Culprit, now: datetime, cfg: JobsConfig) -> IncidentRow:
    """A resolved job incident for the blame, and the hold (with its notice)."""
    incident = repo.new_incident(
        s, node, now, status=RESOLVED, findings=1, job_id=culprit.job.job_id
    )
    set_identity(incident, culprit.identity)
    incident.hardware = False  # the job's fault: not the node's
    incident.summary = f"{describe(culprit.identity)}; {culprit.why}"[:1000]
    job = culprit.job
    repo.add_affected_job(s, incident, job.job_id, job.submit_time, job.name, job.restarts)
    s.flush()
    culprit.job.blamed = culprit.why
    actions.hold(s, culprit.job, culprit.why, now, cfg, incident)
    return incident


def _jobs_on_gpu(result: CheckResult, seen: Mapping[int, JobObservation]) -> list[int]:
    """The jobs holding the result's GPU; the only job, when GPUs are not known."""
    if result.gpu is not None:
        holders = [j for j, o in seen.items() if result.gpu.index in o.gpus]
        if holders:
            return holders
    return list(seen) if len(seen) == 1 else []
