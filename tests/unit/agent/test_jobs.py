"""Jobs in reports: observations from a snapshot (GPU use per job), every report of a
running agent carries them, heartbeats included, and an orphan kill is reported."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

import pytest

from hpresil.adapters.slurm.model import SlurmJob
from hpresil.agent.jobs import job_observations
from hpresil.agent.service import Agent
from hpresil.config import Config, parse
from hpresil.host.job_progress import JobProgress, Progress
from hpresil.host.orphans import OrphanReaper
from hpresil.host.slurm_jobs import JobProcess, LocalJob, LocalJobs, LocalJobsSource
from hpresil.vocab import CheckResult, GpuIdentity, JobObservation, Report, Status
from hpresil.vocab.gpu import GpuSample
from hpresil.vocab.snapshot import Snapshot
from tests.nvmldouble import NvmlDouble
from tests.unit.agent.fakes import FakeController
from tests.unit.host.builders import AT
from tests.unit.host.jobfakes import FakeProc, FakeProcesses, Monotonic, job_env

NODE = "node1"


def gpu(index: int, util: int | None, lost: bool = False) -> GpuSample:
    return GpuSample(GpuIdentity(index=index), utilization_pct=util, lost=lost)


def snapshot(*jobs: LocalJob, gpus: tuple[GpuSample, ...] = ()) -> Snapshot:
    facts = MappingProxyType({LocalJobs: LocalJobs(NODE, jobs)})
    return Snapshot(node=NODE, taken_at=AT, gpus=gpus, facts=facts)


def local_job(job_id: int, gpus: tuple[int, ...], **fields: object) -> LocalJob:
    procs = (JobProcess(1000 + job_id, 1.0, "python", job_id),)
    return LocalJob(job_id, procs, gpus=gpus, **fields)  # type: ignore[arg-type]


def test_a_jobs_gpu_use_is_the_mean_of_its_gpus() -> None:
    gpus = (gpu(0, 90), gpu(1, 70), gpu(2, 3), gpu(3, None), gpu(4, 0, lost=True))
    jobs = (local_job(1, (0, 1)), local_job(2, (2, 3)), local_job(3, (3, 4)), local_job(4, ()))
    by_id = {o.job_id: o for o in job_observations(snapshot(*jobs, gpus=gpus))}
    assert by_id[1].gpu_util_pct == 80.0
    assert by_id[2].gpu_util_pct == 3.0  # GPU 3 gave no reading
    assert by_id[3].gpu_util_pct is None and by_id[4].gpu_util_pct is None
    assert by_id[1].gpus == (0, 1)


def test_an_observation_carries_progress_and_checkpoint() -> None:
    progress = Progress(AT - timedelta(seconds=20), "heartbeat", 400)
    job = local_job(
        7, (), restart_count=2, lead=True, ckpt_dir="/ck", progress=progress, checkpoint=None
    )
    (obs,) = job_observations(snapshot(job))
    assert obs == JobObservation(
        job_id=7,
        restart_count=2,
        lead=True,
        processes=1,
        ckpt_dir="/ck",
        progress_at=progress.at,
        progress_source="heartbeat",
        step=400,
    )


def test_no_jobs_fact_means_no_observations() -> None:
    assert job_observations(Snapshot(node=NODE, taken_at=AT)) == ()


# --- the running agent ---
def _config(root: Path, **jobs: object) -> Config:
    (root / "kmsg").mkdir(exist_ok=True)
    (root / "kmsg" / f"{NODE}.log").write_text("[    1.000000] Linux version 6.8\n")
    return parse(
        {
            "controller": {"url": "http://127.0.0.1:9", "token_file": str(root / "token")},
            "agent": {
                "spool_dir": str(root / "spool" / "{node}"),
                "cache_file": str(root / "run" / "{node}.verdict.json"),
                "poll_s": 0.3,
                "heartbeat_s": 0.4,
                "flush_s": 0.2,
                "kernel_log": {"source": "file", "path": str(root / "kmsg" / "{node}.log")},
                "gpu": {"backend": "nvml"},
            },
            "jobs": jobs,
        }
    )


@pytest.fixture
def table(tmp_path: Path) -> FakeProcesses:
    out = tmp_path / "slurm-42.out"
    out.write_text("epoch 1\n")
    env = job_env(42, SLURM_NODEID="0", SLURM_JOB_GPUS="2,3", SLURM_RESTART_COUNT="1")
    procs = FakeProcesses()
    procs.add(FakeProc(1000, "bash", env, stdout=out))
    return procs


@pytest.fixture
def agent(
    tmp_path: Path, table: FakeProcesses, nvml_double: NvmlDouble
) -> Iterator[tuple[Agent, FakeController]]:
    cfg = _config(tmp_path, kill_orphans=False)
    nvml_double.set_gpu(2, utilization_pct=40)
    nvml_double.set_gpu(3, utilization_pct=60)
    ctl = FakeController()
    jobs = LocalJobsSource(NODE, list_processes=table, reader=table, progress=JobProgress())
    a = Agent(cfg, NODE, ctl, jobs=jobs)
    a.start()
    yield a, ctl
    a.stop()


def test_every_report_carries_the_jobs_heartbeats_too(
    agent: tuple[Agent, FakeController],
) -> None:
    _, ctl = agent
    assert ctl.wait_for(lambda r: r.seq >= 4, 5.0), "too few reports"
    received = list(ctl.received)
    # a tick reports only a change (the state); a heartbeat names the state it stands for
    heartbeats = [r for r in received if r.heartbeat]
    assert heartbeats and any(not r.heartbeat for r in received)
    assert all(r.jobs for r in received)
    (job,) = received[-1].jobs
    assert (job.job_id, job.restart_count, job.lead, job.gpus) == (42, 1, True, (2, 3))
    assert job.gpu_util_pct == 50.0 and job.processes == 1
    assert job.progress_source == "output" and job.progress_at is not None


def test_a_job_that_ended_leaves_the_reports(
    agent: tuple[Agent, FakeController], table: FakeProcesses
) -> None:
    _, ctl = agent
    assert ctl.wait_for(lambda r: bool(r.jobs), 3.0)
    table.remove(1000)
    seq = ctl.received[-1].seq
    assert ctl.wait_for(lambda r: r.seq > seq + 2 and not r.jobs, 5.0)


def test_an_orphan_kill_is_reported_at_once(tmp_path: Path, table: FakeProcesses) -> None:
    cfg = _config(tmp_path)
    slurm_job = SlurmJob(42, "train", "alice", "RUNNING", ("node2",), True, 2, AT, AT)
    killed: list[int] = []

    def signaller(pid: int, create_time: float, sig: int) -> bool:
        killed.append(pid)
        table.procs[pid].status = "zombie"
        return True

    mono = Monotonic()
    reaper = OrphanReaper(
        NODE,
        lambda: [slurm_job],
        grace_s=cfg.jobs.orphan_grace_s,
        signaller=signaller,
        alive=lambda pid, ct: table.procs[pid].status != "zombie",
        monotonic=mono,
        protected_pids=frozenset(),
    )
    ctl = FakeController()
    jobs = LocalJobsSource(NODE, list_processes=table, reader=table)
    a = Agent(cfg, NODE, ctl, jobs=jobs, reaper=reaper)
    try:
        a.tick()  # the tick sees the job's processes
        a.reap()
        mono.advance(cfg.jobs.orphan_grace_s)
        a.reap()
        report = ctl.wait_for(lambda r: any(x.check == "orphans" for x in r.results), 3.0)
    finally:
        a.stop()
    assert killed == [1000]
    assert report is not None
    (result,) = [x for x in report.results if x.check == "orphans"]
    assert result.status is Status.WARN
    assert result.summary == (
        "killed 1 orphaned process of job 42 (restart 1; slurm runs restart 2 on node2)"
    )
    assert [j.job_id for j in report.jobs] == [42]
    later = _reports_after(ctl, report)
    assert all(x.check != "orphans" for r in later for x in r.results)  # reported once


def _reports_after(ctl: FakeController, report: Report) -> list[Report]:
    time.sleep(0.1)
    return [r for r in ctl.received if r.seq > report.seq]


class CountingReaper:
    """Stands in for the orphan reaper: counts its looks."""

    def __init__(self) -> None:
        self.looks = 0

    def look(self, processes: object) -> list[CheckResult]:
        self.looks += 1
        return []


def test_the_reaper_looks_only_while_job_processes_run_here(
    tmp_path: Path, table: FakeProcesses
) -> None:
    cfg = _config(tmp_path, observe_s=0.3)
    reaper = CountingReaper()
    empty = FakeProcesses()
    jobs = LocalJobsSource(NODE, list_processes=empty, reader=empty)
    a = Agent(cfg, NODE, FakeController(), jobs=jobs, reaper=reaper)  # type: ignore[arg-type]
    try:
        time.sleep(0.35)  # past jobs.observe_s
        for _ in range(3):
            a.tick()
        time.sleep(0.2)
        assert reaper.looks == 0  # an idle node never asks Slurm
        empty.add(FakeProc(1000, "bash", job_env(42)))
        a.tick()
        a.tick()  # within jobs.observe_s of the first look: no second one
        deadline = time.monotonic() + 3
        while reaper.looks == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        a.stop()
    assert reaper.looks == 1
