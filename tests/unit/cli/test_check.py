"""``hpresil check``: a tier of checks run locally, with meaningful exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpresil.cli.main import main
from tests.nvmldouble import NvmlDouble


@pytest.fixture
def nvml_config(tmp_path: Path, nvml_double: NvmlDouble) -> Path:
    path = tmp_path / "hpresil.toml"
    path.write_text(
        "[agent.gpu]\n"
        'backend = "nvml"\n'
        "expected_count = 8\n"
        "[checks.services]\n"
        "required = []  # this test machine runs no munged/slurmd\n"
    )
    return path


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main(["--config", str(config), "check", "--node", "n1", *args])
    return int(done.value.code or 0), capsys.readouterr().out


def test_healthy_node_exits_0_and_lists_each_check(
    nvml_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(nvml_config, capsys, "--json")
    results = json.loads(out)
    assert code == 0
    assert {r["check"] for r in results} >= {"gpu_presence", "ecc", "headroom", "processes"}
    assert all(r["status"] in ("ok", "unsupported") for r in results)
    assert "xid" not in {r["check"] for r in results}  # events are the agent's job


def test_uncorrectable_ecc_exits_1(
    nvml_config: Path, nvml_double: NvmlDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    nvml_double.set_gpu(2, ecc_volatile_uncorrected_dram=3, ecc_aggregate_uncorrected_dram=3)
    code, out = run(nvml_config, capsys)
    assert code == 1
    assert "uncorrected" in out and "fail" in out


def test_no_gpu_backend_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "nvml.toml"
    config.write_text('[agent.gpu]\nbackend = "nvml"\n')  # no NVIDIA driver on this machine
    code, out = run(config, capsys, "--json")
    assert code == 2
    (result,) = json.loads(out)
    assert result["status"] == "unknown" and result["check"] == "gpu_backend"
