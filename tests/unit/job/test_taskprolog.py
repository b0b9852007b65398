"""The TaskProlog, run as Slurm runs it: a subprocess with the task's environment whose
stdout lines (``export``/``unset``) become the task's environment, and which never fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpresil.ckpt import manifest
from hpresil.ckpt.lease import Lease, lease_path

REPO = Path(__file__).resolve().parents[3]
WRAPPER = REPO / "slurm-plugins" / "hpresil-hook-taskprolog"


def task_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Roughly what slurmstepd hands a batch step's TaskProlog (22.05), minus noise."""
    env = {
        "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
        "SLURM_JOB_ID": "812",
        "SLURM_JOBID": "812",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURMD_NODENAME": "gpu17",
        "SLURM_SCRIPT_CONTEXT": "prolog_task",
        "SLURM_TASK_PID": "4242",
    }
    return env | extra


def prolog(env: dict[str, str], *argv: str) -> tuple[list[str], str]:
    done = subprocess.run(
        [sys.executable, "-m", "hpresil.job.taskprolog", *argv],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines(), done.stderr


def commit(ckpt: Path, step: int) -> Path:
    path = ckpt / f"step-{step}"
    path.mkdir(parents=True)
    (path / "model.bin").write_bytes(b"w" * 128)
    manifest.write(path, step)
    return path


def fake_scontrol(tmp_path: Path, body: str) -> Path:
    """An ``scontrol`` on the task's PATH; every call is logged to ``calls``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "scontrol"
    script.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\n{body}\n')
    script.chmod(0o755)
    return tmp_path / "calls"


def job_line(comment: str | None) -> str:
    fixture = REPO / "tests/fixtures/slurm/scontrol-show-job-22.05.txt"
    line = fixture.read_text().splitlines()[0].replace("JobId=1 ", "JobId=812 ")
    if comment is None:
        return line
    cut = line.index(" StdErr=")
    return f"{line[:cut]} Comment={comment} {line[cut:]}"


def test_first_run_exports_no_resume_point(tmp_path: Path) -> None:
    ckpt = tmp_path / "run1"
    out, _ = prolog(task_env(tmp_path, HPRESIL_CKPT_DIR=str(ckpt)))
    assert out == [
        "export HPRESIL_RESTART_COUNT=0",
        f"export HPRESIL_CKPT_DIR={ckpt}",
        "unset HPRESIL_RESUME_FROM",
    ]
    assert not ckpt.exists()  # the job creates its directory, not the prolog


def test_resumed_run_points_at_the_newest_complete_checkpoint(tmp_path: Path) -> None:
    ckpt = tmp_path / "run1"
    commit(ckpt, 100)
    commit(ckpt, 200)
    half = ckpt / "step-300"  # the node died while this was being written: no manifest
    half.mkdir()
    (half / "model.bin").write_bytes(b"w" * 7)
    env = task_env(tmp_path, HPRESIL_CKPT_DIR=str(ckpt), SLURM_RESTART_COUNT="2")
    out, _ = prolog(env)
    assert out == [
        "export HPRESIL_RESTART_COUNT=2",
        f"export HPRESIL_CKPT_DIR={ckpt}",
        f"export HPRESIL_RESUME_FROM={ckpt / 'step-200'}",
    ]
    lease = Lease.read(ckpt)  # taken before the choice, for this incarnation
    assert lease is not None and (lease.job_id, lease.generation, lease.node) == (812, 2, "gpu17")


def test_the_checkpoint_dir_comes_from_the_comment_through_scontrol(tmp_path: Path) -> None:
    ckpt = tmp_path / "run1"
    commit(ckpt, 100)
    calls = fake_scontrol(tmp_path, f"echo '{job_line(f'note hpresil:ckpt={ckpt},budget=3')}'")
    out, _ = prolog(task_env(tmp_path, SLURM_RESTART_COUNT="1"))
    assert out == [
        "export HPRESIL_RESTART_COUNT=1",
        f"export HPRESIL_CKPT_DIR={ckpt}",
        f"export HPRESIL_RESUME_FROM={ckpt / 'step-100'}",
    ]
    assert calls.read_text().split() == ["show", "job", "-o", "812"]


def test_the_comment_in_the_environment_needs_no_query(tmp_path: Path) -> None:
    ckpt = tmp_path / "run1"
    commit(ckpt, 100)
    calls = fake_scontrol(tmp_path, "exit 1")
    out, _ = prolog(task_env(tmp_path, SLURM_JOB_COMMENT=f"hpresil:ckpt={ckpt}"))
    assert f"export HPRESIL_RESUME_FROM={ckpt / 'step-100'}" in out
    assert not calls.exists()


def test_other_tasks_neither_query_slurm_nor_take_the_lease(tmp_path: Path) -> None:
    ckpt = tmp_path / "run1"
    commit(ckpt, 100)
    calls = fake_scontrol(tmp_path, f"echo '{job_line(f'hpresil:ckpt={ckpt}')}'")
    out, _ = prolog(task_env(tmp_path, SLURM_PROCID="5"))
    assert out == ["export HPRESIL_RESTART_COUNT=0"]  # no dir known, no query
    assert not calls.exists()
    out, _ = prolog(task_env(tmp_path, SLURM_PROCID="5", HPRESIL_CKPT_DIR=str(ckpt)))
    assert out[-1] == f"export HPRESIL_RESUME_FROM={ckpt / 'step-100'}"
    assert not lease_path(ckpt).exists()


def test_a_job_without_hpresil_gets_only_the_restart_count(tmp_path: Path) -> None:
    fake_scontrol(tmp_path, f"echo '{job_line(None)}'")
    out, err = prolog(task_env(tmp_path))
    assert (out, err) == (["export HPRESIL_RESTART_COUNT=0"], "")


def test_a_bad_comment_is_reported_and_exports_what_is_valid(tmp_path: Path) -> None:
    fake_scontrol(tmp_path, f"echo '{job_line('hpresil:ckpt=relative,budget=3')}'")
    out, err = prolog(task_env(tmp_path))
    said = "hpresil-taskprolog: hpresil comment: ckpt='relative': must be an absolute path"
    assert out == ["export HPRESIL_RESTART_COUNT=0", f"print {said}"]  # into the job's output
    assert err == said + "\n"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1", "exited 1"),
        ("sleep 30", "timed out after 3 s"),  # the group is killed,
    ],
)
def test_slurm_failing_still_exits_zero(tmp_path: Path, body: str, expected: str) -> None:
    fake_scontrol(tmp_path, body)
    out, err = prolog(task_env(tmp_path))
    assert out == ["export HPRESIL_RESTART_COUNT=0"]
    assert err.startswith("hpresil-taskprolog: SlurmError: `") and expected in err


def test_a_stale_instance_is_not_given_a_resume_point(tmp_path: Path) -> None:
    ckpt = tmp_path / "run1"
    commit(ckpt, 100)
    Lease.take(ckpt, 812, 3, "gpu03")  # the requeued instance already runs elsewhere
    out, err = prolog(task_env(tmp_path, HPRESIL_CKPT_DIR=str(ckpt), SLURM_RESTART_COUNT="2"))
    assert out[:2] == ["export HPRESIL_RESTART_COUNT=2", f"export HPRESIL_CKPT_DIR={ckpt}"]
    assert len(out) == 3 and out[2].startswith("print hpresil-taskprolog: Fenced: ")
    assert "Fenced:" in err and "held by job 812 generation 3 on gpu03" in err


def test_spaces_pass_verbatim_and_line_breaks_are_refused(tmp_path: Path) -> None:
    spaced = tmp_path / "my run"
    commit(spaced, 7)
    out, _ = prolog(task_env(tmp_path, HPRESIL_CKPT_DIR=str(spaced)))
    assert out[1:] == [
        f"export HPRESIL_CKPT_DIR={spaced}",
        f"export HPRESIL_RESUME_FROM={spaced / 'step-7'}",
    ]
    broken = tmp_path / "two\nlines"
    refused = "not exporting HPRESIL_CKPT_DIR: Slurm cannot pass a value with a line break"
    out, err = prolog(task_env(tmp_path, HPRESIL_CKPT_DIR=str(broken)))
    assert out == [
        "export HPRESIL_RESTART_COUNT=0",
        f"print hpresil-taskprolog: {refused}",
        "unset HPRESIL_RESUME_FROM",
    ]
    assert refused in err
    out, _ = prolog(task_env(tmp_path, HPRESIL_CKPT_DIR=str(broken), SLURM_PROCID="3"))
    assert out == ["export HPRESIL_RESTART_COUNT=0", "unset HPRESIL_RESUME_FROM"]  # rank 0 tells


def test_arguments_print_help_and_change_nothing(tmp_path: Path) -> None:
    out, err = prolog(task_env(tmp_path, HPRESIL_CKPT_DIR=str(tmp_path)), "--help")
    assert out == [] and "Slurm TaskProlog" in err
    assert not lease_path(tmp_path).exists()


def run_wrapper(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(WRAPPER)], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_wrapper_runs_the_module(tmp_path: Path) -> None:
    ckpt = tmp_path / "run1"
    commit(ckpt, 100)
    env = task_env(tmp_path, HPRESIL_CKPT_DIR=str(ckpt), HPRESIL_PYTHON=sys.executable)
    done = run_wrapper(env | {"PYTHONPATH": str(tmp_path / "nothing-here")})  # -I ignores it
    assert done.returncode == 0
    assert done.stdout.splitlines()[-1] == f"export HPRESIL_RESUME_FROM={ckpt / 'step-100'}"


def test_the_wrapper_survives_a_missing_python(tmp_path: Path) -> None:
    env = task_env(tmp_path, SLURM_RESTART_COUNT="4", HPRESIL_PYTHON=str(tmp_path / "python"))
    done = run_wrapper(env)
    assert done.returncode == 0
    assert done.stdout.splitlines() == ["export HPRESIL_RESTART_COUNT=4"]
    assert done.stderr.splitlines()[-1].startswith("hpresil-taskprolog: ")


def test_the_wrapper_is_executable() -> None:
    assert os.access(WRAPPER, os.X_OK)
