"""The jobs on this node from a fake process table: which processes are whose, each
environment read once, the job's GPUs, output file, progress and checkpoint."""

from __future__ import annotations

import json
import os
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from hpresil.ckpt import manifest
from hpresil.host.job_progress import CheckpointSeen, JobProgress
from hpresil.host.procs import ZOMBIE
from hpresil.host.slurm_jobs import LocalJob, LocalJobsSource, gpu_indexes
from tests.unit.host.builders import AT, Clock
from tests.unit.host.jobfakes import NODE, FakeProc, FakeProcesses, Monotonic, job_env


@pytest.fixture
def table() -> FakeProcesses:
    return FakeProcesses()


def source(table: FakeProcesses, progress: JobProgress | None = None) -> LocalJobsSource:
    return LocalJobsSource(NODE, list_processes=table, reader=table, progress=progress)


def only(src: LocalJobsSource) -> LocalJob:
    (job,) = src.collect().jobs
    return job


def test_a_jobs_processes_are_found_by_job_id_and_node_name(
    table: FakeProcesses, tmp_path: Path
) -> None:
    out = tmp_path / "slurm-42.out"
    out.write_text("starting\n")
    env = job_env(42, SLURM_NODEID="0", SLURM_JOB_GPUS="2,3", HPRESIL_CKPT_DIR="/ck/42")
    table.add(FakeProc(1, "systemd", {}))
    table.add(FakeProc(900, "slurmstepd", {"PATH": "/usr/bin"}))  # slurmd's environment
    table.add(FakeProc(1000, "bash", env, ppid=900, create_time=1000.0, stdout=out))
    table.add(FakeProc(1001, "python", env, ppid=1000, create_time=1001.0, stdout=out))
    table.add(FakeProc(2000, "python", job_env(43, node="node2")))  # another node's job
    table.add(FakeProc(3000, "sshd", None))  # not ours to read

    jobs = source(table).collect()

    assert jobs.node == NODE
    (job,) = jobs.jobs
    assert (job.job_id, job.restart_count, job.lead) == (42, 0, True)
    assert [p.pid for p in job.processes] == [1000, 1001]
    assert job.ckpt_dir == "/ck/42" and job.gpus == (2, 3)
    assert job.output == str(out)
    assert job.progress is not None and job.progress.source == "output"


def test_each_environment_is_read_once_until_the_pid_or_program_changes(
    table: FakeProcesses,
) -> None:
    table.add(FakeProc(1000, "bash", job_env(42)))
    table.add(FakeProc(1100, "cat", {"PATH": "/bin"}))
    src = source(table)
    for _ in range(3):
        src.collect()
    assert table.environ_reads == {1000: 1, 1100: 1}

    table.add(FakeProc(1100, "python", job_env(7), create_time=2000.0))  # pid reused
    table.procs[1000].name = "python"  # the script exec'd a program: a new environment
    table.procs[1000].env = job_env(42, SLURM_RESTART_COUNT="2")
    job_ids = [j.job_id for j in src.collect().jobs]
    assert job_ids == [7, 42]
    assert table.environ_reads == {1000: 2, 1100: 2}
    assert only_job(src, 42).restart_count == 2


def only_job(src: LocalJobsSource, job_id: int) -> LocalJob:
    return next(j for j in src.collect().jobs if j.job_id == job_id)


def test_a_job_with_no_process_left_is_absent_and_zombies_do_not_count(
    table: FakeProcesses,
) -> None:
    table.add(FakeProc(1000, "bash", job_env(42)))
    src = source(table)
    assert [j.job_id for j in src.collect().jobs] == [42]
    table.procs[1000].status = ZOMBIE
    assert src.collect().jobs == ()
    table.remove(1000)
    assert src.collect().jobs == ()


def test_the_newest_incarnation_describes_the_job(table: FakeProcesses, tmp_path: Path) -> None:
    old_out, new_out = tmp_path / "old.out", tmp_path / "new.out"
    old_out.write_text("x\n")
    new_out.write_text("y\n")
    old = job_env(42, SLURM_NODEID="0", SLURM_JOB_GPUS="0", HPRESIL_CKPT_DIR="/ck/old")
    new = job_env(
        42,
        SLURM_NODEID="0",
        SLURM_JOB_GPUS="5",
        SLURM_RESTART_COUNT="1",
        HPRESIL_CKPT_DIR="/ck/new",
    )
    table.add(FakeProc(1000, "bash", old, create_time=1000.0, stdout=old_out))
    table.add(FakeProc(5000, "bash", new, create_time=5000.0, stdout=new_out))
    job = only(source(table))
    assert job.restart_count == 1 and len(job.processes) == 2
    assert (job.gpus, job.ckpt_dir, job.output) == ((5,), "/ck/new", str(new_out))


def test_the_batch_scripts_output_file_is_the_one_read(
    table: FakeProcesses, tmp_path: Path
) -> None:
    out = tmp_path / "slurm-42.out"
    out.write_text("")
    table.add(FakeProc(990, "slurmstepd", {}))
    table.add(FakeProc(1000, "srun-task", job_env(42), ppid=990, create_time=999.0))  # a pipe
    table.add(FakeProc(1001, "bash", job_env(42), ppid=990, create_time=1000.0, stdout=out))
    assert only(source(table)).output == str(out)


@pytest.mark.parametrize(
    ("env", "gpus"),
    [
        (
            {"SLURM_STEP_GPUS": "4,5", "SLURM_JOB_GPUS": "0,1", "CUDA_VISIBLE_DEVICES": "0,1"},
            (4, 5),
        ),
        ({"SLURM_JOB_GPUS": "6,7", "CUDA_VISIBLE_DEVICES": "0,1"}, (6, 7)),
        ({"CUDA_VISIBLE_DEVICES": "3"}, (3,)),
        ({"CUDA_VISIBLE_DEVICES": "GPU-8f1c6f9a-1111-2222-3333-444455556666"}, ()),
        ({"SLURM_JOB_GPUS": "", "CUDA_VISIBLE_DEVICES": "MIG-1"}, ()),
        ({}, ()),
    ],
)
def test_gpu_indexes_come_from_the_step_then_the_job_then_cuda(
    env: dict[str, str], gpus: tuple[int, ...]
) -> None:
    assert gpu_indexes(env) == gpus


def test_output_counts_from_its_mtime_then_from_growth(
    table: FakeProcesses, tmp_path: Path
) -> None:
    out = tmp_path / "slurm-42.out"
    out.write_text("step 1\n")
    written = AT - timedelta(seconds=300)
    os.utime(out, (written.timestamp(), written.timestamp()))
    table.add(FakeProc(1000, "bash", job_env(42), stdout=out))
    clock, mono = Clock(), Monotonic()
    src = source(table, JobProgress(clock=clock, monotonic=mono))

    first = only(src).progress
    assert first is not None and (first.at, first.source) == (written, "output")

    clock.advance(60)
    mono.advance(60)
    assert only(src).progress == first  # no growth: no progress

    with out.open("a") as fh:
        fh.write("step 2\n")
    clock.advance(5)
    mono.advance(5)
    grown = only(src).progress
    assert grown is not None and grown.at == AT + timedelta(seconds=65)

    clock.advance(400)  # a wall-clock step is not progress
    mono.advance(10)
    later = only(src).progress
    assert later is not None and later.at == clock() - timedelta(seconds=10)


def test_the_heartbeat_gives_the_newest_progress_and_the_step(
    table: FakeProcesses, tmp_path: Path
) -> None:
    ckpt = tmp_path / "ckpt"
    beat = ckpt / ".hpresil" / "progress-42.json"  # where hpresil.job writes it
    beat.parent.mkdir(parents=True)
    out = tmp_path / "slurm-42.out"
    out.write_text("")
    old = (AT - timedelta(hours=1)).timestamp()
    os.utime(out, (old, old))
    record = {"job_id": 42, "step": 120, "at": AT.timestamp() - 30, "generation": 0}
    beat.write_text(json.dumps({**record, "node": NODE, "metrics": {"loss": 1.5}}))
    table.add(FakeProc(1000, "bash", job_env(42, HPRESIL_CKPT_DIR=str(ckpt)), stdout=out))
    src = source(table, JobProgress(clock=Clock(), monotonic=Monotonic()))

    progress = only(src).progress
    assert progress is not None
    assert (progress.at, progress.source, progress.step) == (
        AT - timedelta(seconds=30),
        "heartbeat",
        120,
    )

    beat.write_text(json.dumps({**record, "job_id": 7}))  # another job's heartbeat
    assert only(src).progress == progress  # ignored: the last good one stands


def test_a_progress_file_of_the_users_counts_by_its_mtime_only(
    table: FakeProcesses, tmp_path: Path
) -> None:
    touched = tmp_path / "alive"
    touched.write_text(json.dumps({"job_id": 42, "step": 9, "at": 1.0}))  # content ignored
    at = AT - timedelta(seconds=12)
    os.utime(touched, (at.timestamp(), at.timestamp()))
    env = job_env(42, HPRESIL_PROGRESS_FILE=str(touched))
    table.add(FakeProc(1000, "bash", job_env(42)))
    table.add(
        FakeProc(1001, "python", env, ppid=1000, create_time=1001.0)
    )  # exported by the script
    progress = only(source(table, JobProgress(clock=Clock()))).progress
    assert progress is not None
    assert (progress.at, progress.source, progress.step) == (at, "progress_file", None)


def test_relative_paths_are_relative_to_the_jobs_working_folder(
    table: FakeProcesses, tmp_path: Path
) -> None:
    beat = tmp_path / "run" / "beat"
    beat.parent.mkdir()
    beat.write_text("")
    env = job_env(42, HPRESIL_CKPT_DIR="ckpt", HPRESIL_PROGRESS_FILE="run/beat")
    table.add(FakeProc(1000, "bash", env, cwd=str(tmp_path)))
    job = only(source(table, JobProgress(clock=Clock())))
    assert job.ckpt_dir == str(tmp_path / "ckpt")
    assert job.progress is not None and job.progress.source == "progress_file"


class Finder:
    """``hpresil.ckpt.latest`` stand-in: counts calls, may block until released."""

    def __init__(self, blocked: bool = False) -> None:
        self.calls: list[Path] = []
        self.release = threading.Event()
        if not blocked:
            self.release.set()

    def __call__(self, root: Path) -> CheckpointSeen:
        self.calls.append(root)
        self.release.wait(10)
        return CheckpointSeen(str(root / f"step-{len(self.calls)}"), len(self.calls), None)


def test_checkpoints_are_looked_up_on_the_lead_node_at_most_every_observe_s(
    table: FakeProcesses,
) -> None:
    table.add(FakeProc(1000, "bash", job_env(42, SLURM_NODEID="0", HPRESIL_CKPT_DIR="/ck/42")))
    table.add(FakeProc(2000, "python", job_env(43, SLURM_NODEID="1", HPRESIL_CKPT_DIR="/ck/43")))
    find, mono = Finder(), Monotonic()
    progress = JobProgress(find_checkpoint=find, every_s=15.0, monotonic=mono)
    src = source(table, progress)

    lead, other = src.collect().jobs
    assert lead.checkpoint is not None and lead.checkpoint.path == "/ck/42/step-1"
    assert other.checkpoint is None  # not the job's first node
    mono.advance(10)
    assert only_job(src, 42).checkpoint == lead.checkpoint
    assert find.calls == [Path("/ck/42")]
    mono.advance(6)
    assert only_job(src, 42).checkpoint.step == 2  # type: ignore[union-attr]
    assert len(find.calls) == 2


def test_a_hung_checkpoint_look_up_delays_the_answer_not_the_tick(
    table: FakeProcesses,
) -> None:
    table.add(FakeProc(1000, "bash", job_env(42, SLURM_NODEID="0", HPRESIL_CKPT_DIR="/ck/42")))
    find, mono = Finder(blocked=True), Monotonic()
    src = source(table, JobProgress(find_checkpoint=find, wait_s=0.05, monotonic=mono))

    assert only(src).checkpoint is None  # still looking
    mono.advance(60)
    assert only(src).checkpoint is None and len(find.calls) == 1  # never two at once
    find.release.set()
    deadline = threading.Event()
    for _ in range(100):
        job = only(src)
        if job.checkpoint is not None:
            break
        deadline.wait(0.02)
    assert job.checkpoint is not None and job.checkpoint.step == 1


def test_the_restart_count_falls_back_to_the_task_prologs(table: FakeProcesses) -> None:
    table.add(FakeProc(1000, "bash", job_env(42, HPRESIL_RESTART_COUNT="4")))
    table.add(FakeProc(2000, "bash", job_env(43, SLURM_RESTART_COUNT="x")))
    counts = {j.job_id: j.restart_count for j in source(table).collect().jobs}
    assert counts == {42: 4, 43: 0}


def test_what_the_incarnation_resumed_from_is_judged_once(
    table: FakeProcesses, tmp_path: Path
) -> None:
    ckpt = tmp_path / "step-40"
    ckpt.mkdir()
    (ckpt / "model.bin").write_bytes(b"w" * 64)
    manifest.write(ckpt, 40)
    env = job_env(
        44,
        SLURM_NODEID="0",
        SLURM_RESTART_COUNT="1",
        HPRESIL_CKPT_DIR=str(tmp_path),
        HPRESIL_RESUME_FROM=str(ckpt),
    )
    table.add(FakeProc(1000, "python", env))
    src = source(table)

    resumed = only(src).resumed_from

    assert resumed is not None and resumed.path == str(ckpt) and resumed.step == 40
    committed = (ckpt / manifest.MANIFEST_NAME).stat().st_mtime
    assert resumed.committed_at is not None
    assert resumed.committed_at.timestamp() == pytest.approx(committed)
    (ckpt / manifest.MANIFEST_NAME).unlink()  # judged once per incarnation: not again
    assert only(src).resumed_from == resumed


def test_a_first_run_resumed_from_nothing(table: FakeProcesses) -> None:
    table.add(FakeProc(1000, "python", job_env(45, SLURM_NODEID="0")))
    assert only(source(table)).resumed_from is None
