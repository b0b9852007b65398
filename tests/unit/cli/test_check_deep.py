"""``hpresil check --tier deep``: the DCGM diagnostic, run only on an idle node.

Slurm and DCGM are swapped at the process boundary: ``slurm.bin_dir`` points at a
fake ``squeue`` and ``dcgm.binary`` at a fake ``dcgmi`` that prints a recorded output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpresil.cli.main import main

DCGM = Path(__file__).resolve().parents[2] / "fixtures" / "dcgm"


def setup(tmp_path: Path, *, running_job: bool, diag: str, rc: int = 0) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    jobs = []
    if running_job:
        jobs = [
            {
                "job_id": 7,
                "job_state": "RUNNING",
                "nodes": "n1",
                "requeue": True,
                "restart_cnt": 0,
                "submit_time": 1795320000,
                "name": "train",
            }
        ]
    squeue = bin_dir / "squeue"
    squeue.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps({'jobs': jobs})}\nEOF\n")
    dcgmi = bin_dir / "dcgmi"
    dcgmi.write_text(
        f'#!/bin/sh\necho "$@" >> {tmp_path}/dcgmi-calls\ncat {DCGM / diag}\nexit {rc}\n'
    )
    for exe in (squeue, dcgmi):
        exe.chmod(0o755)
    config = tmp_path / "hpresil.toml"
    config.write_text(
        f'[slurm]\nbin_dir = "{bin_dir}"\nretries = 0\n[dcgm]\nbinary = "{dcgmi}"\ndiag_level = 2\n'
    )
    return config


def run(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, object]]]:
    with pytest.raises(SystemExit) as done:
        main(["--config", str(config), "check", "--node", "n1", "--tier", "deep", "--json"])
    return int(done.value.code or 0), json.loads(capsys.readouterr().out)


def test_idle_node_passes_the_diagnostic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup(tmp_path, running_job=False, diag="dcgm3_vc_r2_pass.json")
    code, results = run(config, capsys)
    assert code == 0
    assert results and all(r["check"] == "dcgm_diag" for r in results)
    assert "diag -r 2 -j" in (tmp_path / "dcgmi-calls").read_text()


def test_failing_memory_test_exits_1_with_its_category(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup(tmp_path, running_job=False, diag="dcgm4_r2_fail_memory.json", rc=226)
    code, results = run(config, capsys)
    assert code == 1
    failed = [r for r in results if r["status"] == "fail"]
    assert failed and {r["category"] for r in failed} == {"hbm_ecc"}


def test_busy_node_is_not_diagnosed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = setup(tmp_path, running_job=True, diag="dcgm3_vc_r2_pass.json")
    code, results = run(config, capsys)
    assert code == 2
    assert not (tmp_path / "dcgmi-calls").exists()  # never started under a job
    assert all(r["status"] == "unknown" for r in results)
