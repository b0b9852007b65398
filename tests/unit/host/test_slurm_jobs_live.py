"""The jobs source on this machine's real process table: a child started with a Slurm
job's environment is found, its output seen growing, its heartbeat and checkpoint read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpresil.ckpt import manifest
from hpresil.host.job_progress import JobProgress
from hpresil.host.procs import SharedProcessTable
from hpresil.host.slurm_jobs import LocalJob, LocalJobsSource

TALKER = "import time\nwhile True:\n    print('step', flush=True)\n    time.sleep(0.05)\n"


@pytest.fixture
def node() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"  # no other process on this machine claims it


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    folder = tmp_path / "ckpt"
    (folder / "step-20").mkdir(parents=True)
    (folder / "step-20" / "weights.bin").write_bytes(b"w" * 64)
    manifest.write(folder / "step-20", 20)
    return folder


@pytest.fixture
def child(tmp_path: Path, node: str, ckpt: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "SLURM_JOB_ID": "4242",
        "SLURMD_NODENAME": node,
        "SLURM_NODEID": "0",
        "SLURM_RESTART_COUNT": "3",
        "SLURM_JOB_GPUS": "1,6",
        "HPRESIL_CKPT_DIR": str(ckpt),
    }
    with (tmp_path / "slurm-4242.out").open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", TALKER], env=env, stdout=out)
    yield proc
    proc.kill()
    proc.wait()


def collect(src: LocalJobsSource) -> LocalJob:
    (job,) = src.collect().jobs
    return job


def test_a_real_job_process_is_found_with_its_output_heartbeat_and_checkpoint(
    child: subprocess.Popen[bytes], node: str, ckpt: Path, tmp_path: Path
) -> None:
    time.sleep(0.2)  # the child has exec'd python and printed
    table = SharedProcessTable(ttl_s=0.0)
    src = LocalJobsSource(node, list_processes=table, progress=JobProgress(wait_s=5.0))

    job = collect(src)

    assert [p.pid for p in job.processes] == [child.pid]
    assert (job.job_id, job.restart_count, job.lead, job.gpus) == (4242, 3, True, (1, 6))
    assert job.ckpt_dir == str(ckpt)
    assert job.output == str(tmp_path / "slurm-4242.out")
    assert job.checkpoint is not None
    assert (job.checkpoint.path, job.checkpoint.step) == (str(ckpt / "step-20"), 20)
    first = job.progress
    assert first is not None and first.source == "output"

    time.sleep(0.3)  # it printed meanwhile
    grown = collect(src).progress
    assert grown is not None and grown.source == "output" and grown.at > first.at

    beat = ckpt / ".hpresil" / "progress-4242.json"
    beat.parent.mkdir()
    at = time.time() + 1  # newer than any output so far
    beat.write_text(json.dumps({"job_id": 4242, "step": 77, "at": at, "generation": 3}))
    progress = collect(src).progress
    assert progress is not None
    assert (progress.source, progress.step) == ("heartbeat", 77)
    assert progress.at.timestamp() == pytest.approx(at, abs=1e-5)


def test_the_agents_own_environment_is_not_a_job_here(node: str) -> None:
    src = LocalJobsSource(node, list_processes=SharedProcessTable(ttl_s=0.0))
    assert src.collect().jobs == ()
