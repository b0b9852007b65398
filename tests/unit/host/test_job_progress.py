"""A time that is not one (NaN, infinity, the year 10^9) is no sign of a job's progress,
and never makes the jobs fact fail."""

from __future__ import annotations

import json
import math
import os
from datetime import timedelta
from pathlib import Path

import pytest

from hpresil.ckpt.model import Checkpoint, Format
from hpresil.host import job_progress
from hpresil.host.job_progress import FileState, JobProgress, checkpoint_seen, utc
from hpresil.host.slurm_jobs import LocalJobsSource
from tests.unit.host.builders import AT, Clock
from tests.unit.host.jobfakes import NODE, FakeProc, FakeProcesses, Monotonic, job_env

ABSURD = [math.inf, -math.inf, math.nan, 3.2e16, -3.2e16, 10**18]  # 3.2e16 s: year 10^9


class OddOutputs(FakeProcesses):
    """A process table whose output files carry a modification time chosen by the test."""

    mtime = 0.0

    def stdout(self, pid: int) -> FileState | None:
        state = super().stdout(pid)
        return None if state is None else FileState(state.path, state.size, self.mtime)


def heartbeat_job(table: FakeProcesses, tmp_path: Path) -> Path:
    ckpt = tmp_path / "ckpt"
    beat = ckpt / ".hpresil" / "progress-42.json"  # where hpresil.job writes it
    beat.parent.mkdir(parents=True)
    table.add(FakeProc(1000, "bash", job_env(42, HPRESIL_CKPT_DIR=str(ckpt))))
    return beat


def jobs(table: FakeProcesses) -> LocalJobsSource:
    progress = JobProgress(clock=Clock(), monotonic=Monotonic())
    return LocalJobsSource(NODE, list_processes=table, reader=table, progress=progress)


@pytest.mark.parametrize("at", ABSURD)
def test_utc_answers_none_for_what_is_not_a_time(at: float) -> None:
    assert utc(at) is None


@pytest.mark.parametrize("at", ABSURD)
def test_a_heartbeat_at_an_absurd_time_is_no_progress(tmp_path: Path, at: float) -> None:
    table = FakeProcesses()
    beat = heartbeat_job(table, tmp_path)
    beat.write_text(json.dumps({"job_id": 42, "step": 7, "at": at}))
    (job,) = jobs(table).collect().jobs
    assert job.progress is None


@pytest.mark.parametrize("at", ABSURD)
def test_after_an_absurd_heartbeat_the_last_good_one_stands(tmp_path: Path, at: float) -> None:
    table = FakeProcesses()
    beat = heartbeat_job(table, tmp_path)
    src = jobs(table)
    beat.write_text(json.dumps({"job_id": 42, "step": 7, "at": AT.timestamp() - 30}))
    (job,) = src.collect().jobs
    good = job.progress
    assert good is not None and good.at == AT - timedelta(seconds=30) and good.step == 7
    beat.write_text(json.dumps({"job_id": 42, "step": 8, "at": at, "pad": "x"}))
    (job,) = src.collect().jobs
    assert job.progress == good


@pytest.mark.parametrize("mtime", [math.nan, -math.inf, -3.2e16, -1e18])
def test_a_progress_file_touched_at_an_absurd_time_is_no_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mtime: float
) -> None:
    touched = tmp_path / "alive"
    touched.write_text("")
    monkeypatch.setattr(job_progress, "file_state", lambda p: FileState(str(p), 0, mtime))
    table = FakeProcesses()
    table.add(FakeProc(1000, "bash", job_env(42, HPRESIL_PROGRESS_FILE=str(touched))))
    (job,) = jobs(table).collect().jobs
    assert job.progress is None


@pytest.mark.parametrize("mtime", [math.nan, -math.inf, -3.2e16, -1e18])
def test_an_output_file_written_at_an_absurd_time_is_no_progress_until_it_grows(
    tmp_path: Path, mtime: float
) -> None:
    out = tmp_path / "slurm-42.out"
    out.write_text("starting\n")
    table = OddOutputs()
    table.mtime = mtime
    table.add(FakeProc(1000, "bash", job_env(42), stdout=out))
    src = jobs(table)
    (job,) = src.collect().jobs
    assert job.progress is None
    table.mtime = os.stat(out).st_mtime  # written again: the kernel sets a real time
    (job,) = src.collect().jobs
    assert job.progress is not None and job.progress.source == "output"


@pytest.mark.parametrize("committed_at", ABSURD)
def test_a_checkpoint_committed_at_an_absurd_time_is_seen_without_a_time(
    tmp_path: Path, committed_at: float
) -> None:
    found = Checkpoint(tmp_path / "step-3", 3, Format.MANIFEST, True, None, committed_at)
    seen = checkpoint_seen(found)
    assert (seen.path, seen.step, seen.committed_at) == (str(tmp_path / "step-3"), 3, None)
