"""The read side of the API: stored rows turned into :mod:`hpresil.api` views."""

from __future__ import annotations

from datetime import datetime

from hpresil.api import (
    ActionView,
    AffectedJob,
    IncidentView,
    JobView,
    MttfView,
    RecoveryStepView,
    SharedFaultView,
    SharedRef,
)
from hpresil.config import ControllerConfig, JobsConfig
from hpresil.controller import mttf, node_list, stats
from hpresil.controller.errors import NotFound
from hpresil.controller.jobs.views import job_view
from hpresil.controller.node_list import NodePage, NodeQuery
from hpresil.store import Clock, Store, jobrepo, repo
from hpresil.store import shared as shared_ledger
from hpresil.store.models import (
    ActionRow,
    IncidentJobRow,
    IncidentRow,
    RecoveryStepRow,
    SharedFaultRow,
)
from hpresil.store.repo import StatusFilter
from hpresil.vocab import GpuIdentity


class Views:
    def __init__(
        self, store: Store, cfg: ControllerConfig, clock: Clock, jobs: JobsConfig | None = None
    ) -> None:
        self._store = store
        self._cfg = cfg
        self._jobs = jobs or JobsConfig()
        self._clock = clock

    def jobs(self, *, idle: bool = False, all_jobs: bool = False) -> list[JobView]:
        """Protected jobs (``all_jobs``: every job seen, ended ones too); ``idle``: the
        jobs whose GPUs are idle now, protected or not."""
        now = self._clock()
        with self._store.read() as s:
            views = [job_view(r, now, self._jobs) for r in jobrepo.jobs(s, ended=all_jobs)]
        if idle:
            return [v for v in views if v.idle]
        return views if all_jobs else [v for v in views if v.protected]

    def job(self, job_id: int) -> JobView:
        now = self._clock()
        with self._store.read() as s:
            rows = [r for r in jobrepo.jobs(s, ended=True) if r.job_id == job_id]
            if not rows:
                raise NotFound(f"hpresil has not seen job {job_id}")
            return job_view(rows[-1], now, self._jobs)

    def nodes(self, query: NodeQuery | None = None) -> NodePage:
        """The nodes ``query`` asks for (all by default), in natural order."""
        with self._store.read() as s:
            now = self._clock()
            return node_list.page(s, query or NodeQuery(), now, self._cfg.stale_after_s)

    def incidents(
        self, status: StatusFilter = "all", node: str | None = None
    ) -> list[IncidentView]:
        with self._store.read() as s:
            return [incident_view(row) for row in repo.incidents(s, status, node)]

    def incident(self, incident_id: int) -> IncidentView:
        with self._store.read() as s:
            row = repo.incident(s, incident_id)
            if row is None:
                raise NotFound(f"no incident #{incident_id}")
            return incident_view(row)

    def shared_faults(self, status: StatusFilter = "all") -> list[SharedFaultView]:
        with self._store.read() as s:
            return [shared_fault_view(r) for r in shared_ledger.faults(s, status)]

    def shared_fault(self, fault_id: int) -> SharedFaultView:
        with self._store.read() as s:
            row = s.get(SharedFaultRow, fault_id)
            if row is None:
                raise NotFound(f"no shared incident #{fault_id}")
            return shared_fault_view(row)

    def mttf(self, by: stats.By = "all", since: datetime | None = None) -> MttfView:
        """Summed by the database (:mod:`hpresil.controller.mttf`)."""
        return mttf.from_ledger(self._store, now=self._clock(), by=by, since=since)


def incident_view(row: IncidentRow) -> IncidentView:
    return IncidentView(
        id=row.id,
        node=row.node,
        job_id=row.job_id,
        status=row.status,
        category=row.category,
        action=row.action,
        hardware=row.hardware and row.shared_id is None,
        shared=shared_ref(row.shared),
        summary=row.summary,
        xid=row.xid,
        gpu=_gpu(row),
        observed_at=row.observed_at,
        detected_at=row.detected_at,
        drained_at=row.drained_at,
        resolved_at=row.resolved_at,
        findings=row.findings,
        jobs=[affected_job_view(j) for j in row.jobs],
        actions=[action_view(a) for a in row.actions],
        recovery=[recovery_step_view(step) for step in row.recovery],
    )


def recovery_step_view(row: RecoveryStepRow) -> RecoveryStepView:
    return RecoveryStepView.model_validate(row, from_attributes=True)


def shared_ref(row: SharedFaultRow | None) -> SharedRef | None:
    if row is None:
        return None
    return SharedRef(id=row.id, kind=row.kind, component=row.component)


def shared_fault_view(row: SharedFaultRow) -> SharedFaultView:
    return SharedFaultView(
        id=row.id,
        kind=row.kind,
        component=row.component,
        category=row.category,
        status="open" if row.resolved_at is None else "resolved",
        size=row.size,
        nodes=list(row.nodes),
        incidents=[i.id for i in row.incidents],
        why=row.why,
        opened_at=row.opened_at,
        resolved_at=row.resolved_at,
        merged_into=row.merged_into,
    )


def affected_job_view(row: IncidentJobRow) -> AffectedJob:
    """A job the incident hit, as the API shows it."""
    return AffectedJob.model_validate(row, from_attributes=True)


def action_view(row: ActionRow) -> ActionView:
    return ActionView.model_validate(row, from_attributes=True)


def _gpu(row: IncidentRow) -> GpuIdentity | None:
    if row.gpu_index is None:
        return None
    return GpuIdentity(
        index=row.gpu_index,
        uuid=row.gpu_uuid,
        serial=row.gpu_serial,
        pci_bus_id=row.gpu_pci,
        name=row.gpu_name,
    )
