"""How the agent is assembled for jobs: one process listing shared by the host checks
and the jobs source, and an orphan reaper only where ``jobs.kill_orphans``."""

from __future__ import annotations

from hpresil.assembly import jobs_source_for, reaper_for, sources_for
from hpresil.config import parse
from hpresil.host.processes import ProcessFacts
from hpresil.host.procs import ProcInfo, SharedProcessTable
from hpresil.host.services import ServiceFacts
from hpresil.host.slurm_jobs import LocalJobs


class Lister:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> list[ProcInfo]:
        self.calls += 1
        return [ProcInfo(1, "init", "sleeping"), ProcInfo(900, "slurmd", "sleeping")]


def test_host_checks_and_jobs_read_one_listing() -> None:
    cfg = parse({"checks": {"disabled": ["ib", "mounts", "headroom"]}})
    lister = Lister()
    table = SharedProcessTable(lister, ttl_s=60.0)
    sources = [*sources_for(cfg, "node1", table=table), jobs_source_for(cfg, "node1", table)]
    facts = {s.kind: s.collect() for s in sources if s.kind is not ServiceFacts}
    processes = facts[ProcessFacts]
    assert isinstance(processes, ProcessFacts) and processes.total == 2  # the shared table's
    assert facts[LocalJobs] == LocalJobs("node1", ())
    assert lister.calls == 1


def test_the_reaper_follows_kill_orphans() -> None:
    assert reaper_for(parse({"jobs": {"kill_orphans": False}}), "node1") is None
    reaper = reaper_for(parse({}), "node1")
    assert reaper is not None and reaper.look([]) == []  # nothing here: slurm not asked
