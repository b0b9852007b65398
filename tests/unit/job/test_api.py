"""The job helper: resume point, lease per rank, commits the scanner accepts, heartbeats."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpresil.ckpt import latest, manifest, scan
from hpresil.ckpt.lease import lease_path
from hpresil.job import Fenced, Job, Lease, progress_file

REPO = Path(__file__).resolve().parents[3]


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def slurm_env(ckpt: Path, *, job: int = 812, restarts: int = 0, **extra: str) -> dict[str, str]:
    env = {"SLURM_JOB_ID": str(job), "SLURM_PROCID": "0", "SLURMD_NODENAME": "gpu17"}
    env["HPRESIL_CKPT_DIR"] = str(ckpt)
    if restarts:
        env["SLURM_RESTART_COUNT"] = str(restarts)
    return env | extra


def save(ckpt: Path, step: int, size: int = 64) -> Path:
    """What a framework's save leaves: a directory of files, no commit marker yet."""
    path = ckpt / f"step-{step}"
    path.mkdir(parents=True)
    (path / "model.bin").write_bytes(b"w" * size)
    (path / "optim.bin").write_bytes(b"o" * size)
    return path


# --- environment ------------------------------------------------------------------


def test_restart_count_is_the_generation(tmp_path: Path) -> None:
    assert Job(slurm_env(tmp_path)).generation == 0
    assert Job(slurm_env(tmp_path, restarts=3)).generation == 3
    assert Job({"HPRESIL_RESTART_COUNT": "2"}).generation == 2
    assert Job({"SLURM_RESTART_COUNT": "lots"}).generation == 0


def test_checkpoint_dir_from_env_then_comment(tmp_path: Path) -> None:
    comment = "hpresil:ckpt=/lustre/me/run1,budget=3"
    assert Job({"SLURM_JOB_COMMENT": comment}).ckpt_dir == Path("/lustre/me/run1")
    both = {"SLURM_JOB_COMMENT": comment, "HPRESIL_CKPT_DIR": str(tmp_path)}
    assert Job(both).ckpt_dir == tmp_path
    assert Job({"HPRESIL_CKPT_DIR": "rel/dir"}).ckpt_dir == Path.cwd() / "rel/dir"
    assert Job({}).ckpt_dir is None


def test_torchrun_rank_wins_over_the_slurm_task(tmp_path: Path) -> None:
    # torchrun's workers on node 0 all inherit SLURM_PROCID=0: only RANK tells them apart
    assert not Job(slurm_env(tmp_path, RANK="3")).is_writer
    assert Job(slurm_env(tmp_path, RANK="0", SLURM_PROCID="8")).is_writer
    assert not Job(slurm_env(tmp_path, SLURM_PROCID="1")).is_writer


# --- lease through the job --------------------------------------------------------


def test_resume_from_takes_the_lease_before_choosing(tmp_path: Path) -> None:
    job = Job(slurm_env(tmp_path / "ck", restarts=1))
    assert job.resume_from() is None  # a first run: nothing to resume
    held = Lease.read(tmp_path / "ck")
    assert held is not None and (held.job_id, held.generation, held.node) == (812, 1, "gpu17")
    assert job.start() == held  # idempotent


def test_mark_complete_commits_a_checkpoint_the_scanner_accepts(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    job = Job(slurm_env(ck, restarts=2))
    job.resume_from()
    written = job.mark_complete(save(ck, 100), 100)
    assert written == ck / "step-100" / manifest.MANIFEST_NAME
    found = latest(ck)
    assert found is not None and found.complete and found.path == ck / "step-100"
    record = manifest.read(written)
    assert record.step == 100
    assert record.lease == Lease.read(ck).as_dict()  # type: ignore[union-attr]
    assert set(record.files) == {"model.bin", "optim.bin"}


def test_a_fenced_instance_cannot_commit(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    old = Job(slurm_env(ck, restarts=0, SLURMD_NODENAME="gpu17"))
    old.resume_from()
    old.mark_complete(save(ck, 100), 100)

    new = Job(slurm_env(ck, restarts=1, SLURMD_NODENAME="gpu03"))  # Slurm requeued it
    assert new.resume_from() == ck / "step-100"

    path = save(ck, 200)  # the old instance is still running and saving
    with pytest.raises(Fenced, match="held by job 812 generation 1 on gpu03"):
        old.guard()
    with pytest.raises(Fenced):
        old.mark_complete(path, 200)
    assert not (path / manifest.MANIFEST_NAME).exists()
    assert latest(ck).path == ck / "step-100"  # type: ignore[union-attr]


def test_a_commit_that_slips_past_the_check_is_never_chosen(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    old = Job(slurm_env(ck))
    old.resume_from()
    old.mark_complete(save(ck, 100), 100)
    old.guard()  # passes: the old instance goes on to commit step 200 ...
    new = Job(slurm_env(ck, restarts=1))
    assert new.start() == Lease.read(ck)  # ... but the new instance takes the lease first
    stale = old.start()
    assert stale is not None and stale.generation == 0
    manifest.write(save(ck, 200), 200, lease=stale.as_dict())  # lands after the takeover

    judged = {c.path.name: c for c in scan(ck)}
    assert not judged["step-200"].complete
    assert "fenced generation 0" in (judged["step-200"].reason or "")
    assert new.resume_from() == ck / "step-100"


def test_other_ranks_adopt_the_lease_and_are_fenced_with_it(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    rank3 = Job(slurm_env(ck, SLURM_PROCID="3"))
    assert rank3.resume_from() is None  # a first run, the directory not even made yet
    assert rank3.start() is None  # rank 0 has not taken it: rank 3 never writes the lease
    assert not lease_path(ck).exists()
    rank3.guard()  # nothing to be fenced by yet

    Job(slurm_env(ck)).start()  # rank 0
    assert rank3.start() == Lease.read(ck)
    rank3.guard()

    Job(slurm_env(ck, restarts=1)).start()  # the requeued instance
    with pytest.raises(Fenced):
        rank3.guard()


def test_other_ranks_of_a_job_replaced_by_a_resubmission_are_fenced(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    clock = FakeClock(1000.0)
    Lease.take(ck, 700, 0, "gpu01", now=500.0)  # a predecessor, before this job started
    rank3 = Job(slurm_env(ck, job=812, SLURM_PROCID="3"), clock=clock)
    rank3.guard()  # an older job's lease: rank 0 of this job will take over
    Lease.take(ck, 900, 0, "gpu03", now=2000.0)  # resubmitted while this one still runs
    with pytest.raises(Fenced, match="job 900"):
        rank3.guard()


def test_a_newer_generation_refuses_a_stale_start(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    Job(slurm_env(ck, restarts=4)).start()
    with pytest.raises(Fenced):
        Job(slurm_env(ck, restarts=3)).start()


def test_outside_slurm_there_is_no_lease_but_commits_work(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    job = Job({"HPRESIL_CKPT_DIR": str(ck)})
    assert job.start() is None
    job.guard()
    written = job.mark_complete(save(ck, 5), 5)
    assert manifest.read(written).lease is None
    assert not lease_path(ck).exists()
    assert job.resume_from() == ck / "step-5"


# --- resume point -----------------------------------------------------------------


def test_resume_from_prefers_the_taskprologs_choice_while_it_verifies(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    writer = Job(slurm_env(ck))
    writer.mark_complete(save(ck, 100), 100)
    writer.mark_complete(save(ck, 200), 200)
    hinted = Job(slurm_env(ck, HPRESIL_RESUME_FROM=str(ck / "step-100")))
    assert hinted.resume_from() == ck / "step-100"


def test_resume_from_falls_back_to_the_scan_when_the_hint_broke(tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    writer = Job(slurm_env(ck))
    writer.mark_complete(save(ck, 100), 100)
    writer.mark_complete(save(ck, 200), 200)
    (ck / "step-200" / "model.bin").write_bytes(b"short")  # damaged since the TaskProlog ran
    hinted = Job(slurm_env(ck, HPRESIL_RESUME_FROM=str(ck / "step-200")))
    assert hinted.resume_from() == ck / "step-100"


# --- heartbeat --------------------------------------------------------------------


def test_progress_file_location() -> None:
    assert progress_file(812, Path("/ck"), {}) == Path("/ck/.hpresil/progress-812.json")
    explicit = {"HPRESIL_PROGRESS_FILE": "/run/me/beat.json"}
    assert progress_file(812, Path("/ck"), explicit) == Path("/run/me/beat.json")
    assert progress_file(812, None, {}) is None


def test_progress_writes_the_documented_record(tmp_path: Path) -> None:
    clock = FakeClock()
    job = Job(slurm_env(tmp_path, restarts=1), clock=clock)
    job.progress(42, loss=1.25, tokens_per_s=9000, bad=float("nan"))
    beat = json.loads((tmp_path / ".hpresil" / "progress-812.json").read_text())
    assert beat == {
        "job_id": 812,
        "step": 42,
        "at": clock.now,
        "generation": 1,
        "node": "gpu17",
        "metrics": {"loss": 1.25, "tokens_per_s": 9000.0, "bad": None},
    }


def test_progress_is_rate_limited_unless_the_step_moves(tmp_path: Path) -> None:
    clock = FakeClock(100.0)
    job = Job(slurm_env(tmp_path), clock=clock)
    beat = tmp_path / ".hpresil" / "progress-812.json"

    def written() -> tuple[int, float]:
        data = json.loads(beat.read_text())
        return data["step"], data["at"]

    job.progress(1)
    clock.now = 100.5
    job.progress(1)  # same step within a second: dropped
    assert written() == (1, 100.0)
    job.progress(2)  # the step moved: written at once
    assert written() == (2, 100.5)
    clock.now = 101.6
    job.progress(2)  # a second later: written again (a slow step still beats)
    assert written() == (2, 101.6)


def test_progress_never_raises_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("not a directory")
    job = Job(slurm_env(tmp_path, HPRESIL_PROGRESS_FILE=str(tmp_path / "file/beat.json")))
    with caplog.at_level(logging.WARNING, logger="hpresil.job"):
        for step in range(3):
            job.progress(step)
        job.progress(4, loss="not a number")  # type: ignore[arg-type]
    assert len(caplog.records) == 1
    assert "heartbeat to" in caplog.records[0].getMessage()


def test_progress_only_on_rank_zero_and_only_with_somewhere_to_write(tmp_path: Path) -> None:
    Job(slurm_env(tmp_path, SLURM_PROCID="5")).progress(1)
    Job({"HPRESIL_CKPT_DIR": str(tmp_path)}).progress(1)  # outside Slurm: no job id to name it
    assert not (tmp_path / ".hpresil").exists()
    explicit = tmp_path / "beat.json"
    Job({"HPRESIL_PROGRESS_FILE": str(explicit)}).progress(1)
    assert json.loads(explicit.read_text())["job_id"] is None


# --- the module functions, as a training script uses them --------------------------

TRAIN = """
import os, sys
import hpresil.job as hj

start = hj.resume_from()
print("resume", start)
print("restarts", hj.restart_count(), "dir", hj.checkpoint_dir())
first = 0 if start is None else int(start.name.split("-")[1])
for step in range(first + 1, first + 3):
    hj.progress(step, loss=1.0 / step)
    if step % 2 == 0:
        hj.guard()
        path = hj.checkpoint_dir() / f"step-{step}"
        path.mkdir()
        (path / "model.bin").write_bytes(b"x" * step)
        print("committed", hj.mark_complete(path, step).parent.name)
"""


def test_a_training_script_resumes_across_a_requeue(tmp_path: Path) -> None:
    ck = tmp_path / "my run"  # spaces are fine
    ck.mkdir()

    def run(restarts: int) -> list[str]:
        env = {**os.environ, **slurm_env(ck, restarts=restarts)}
        env.pop("HPRESIL_RESUME_FROM", None)
        done = subprocess.run(
            [sys.executable, "-c", TRAIN], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    assert run(0) == ["resume None", f"restarts 0 dir {ck}", "committed step-2"]
    assert run(1) == [f"resume {ck}/step-2", f"restarts 1 dir {ck}", "committed step-4"]
    beat = json.loads((ck / ".hpresil" / "progress-812.json").read_text())
    assert (beat["step"], beat["generation"]) == (4, 1)
