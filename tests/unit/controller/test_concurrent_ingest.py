"""Reports taken at once (issue 12: ingest without a global lock). On PostgreSQL the
controller takes reports on many threads, as several replicas do, and they wait for
each other only in the database (hpresil.store.serial); on SQLite one at a time. Either
way the limits hold, a node has one incident, and a job's nodes all count."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from hpresil.config import PolicyConfig
from hpresil.config.limits import LimitsConfig
from hpresil.controller.ingest import Ingest
from hpresil.store import Store
from hpresil.store.models import ActionRow, IncidentRow, JobRow
from hpresil.vocab import JobObservation, Report
from hpresil.vocab.actions import ActionStatus
from tests.unit.controller.fakes import FakeClock, report, result, xid79

CAP = PolicyConfig(expedite_requeue=False, limits=LimitsConfig(max_out=3, max_out_pct=100))


def at_once(reports: list[Report], take: Callable[[Report], object]) -> None:
    """Each report on a thread of its own, released together."""
    start = threading.Barrier(len(reports))

    def one(rep: Report) -> object:
        start.wait()
        return take(rep)

    with ThreadPoolExecutor(len(reports)) as pool:
        list(pool.map(one, reports))  # re-raises what a thread raised


def test_faults_at_once_never_drain_past_the_cap(store: Store, clock: FakeClock) -> None:
    ingest = Ingest(store, CAP, clock, lambda: None)
    at_once([report(f"gpu{i:02d}", xid79()) for i in range(8)], ingest)  # under the breaker
    with store.read() as s:
        drains = s.execute(
            select(ActionRow.status, func.count())
            .where(ActionRow.kind == "drain")
            .group_by(ActionRow.status)
        ).all()
        incidents = s.scalar(select(func.count()).select_from(IncidentRow))
    assert dict(drains) == {ActionStatus.PENDING: 3, ActionStatus.SKIPPED: 5}
    assert incidents == 8


def test_one_nodes_faults_at_once_make_one_incident(store: Store, clock: FakeClock) -> None:
    ingest = Ingest(store, CAP, clock, lambda: None)
    at_once([report("gpu01", xid79(index=i)) for i in range(8)], ingest)
    with store.read() as s:
        incidents = s.scalars(select(IncidentRow)).all()
        drains = s.scalar(select(func.count()).where(ActionRow.kind == "drain"))
    assert len(incidents) == 1 and incidents[0].findings == 8 and drains == 1


def test_a_jobs_nodes_reporting_at_once_all_count(store: Store, clock: FakeClock) -> None:
    ingest = Ingest(store, CAP, clock, lambda: None)
    job = JobObservation(job_id=42, processes=8, gpus=(0,), gpu_util_pct=90.0)
    reports = [report(f"gpu{i:02d}", result()) for i in range(8)]
    at_once([r.model_copy(update={"jobs": (job,)}) for r in reports], ingest)
    with store.read() as s:
        (row,) = s.scalars(select(JobRow).where(JobRow.job_id == 42)).all()
        assert sorted(row.usage or {}) == [f"gpu{i:02d}" for i in range(8)]
        assert row.gpus == 8
