"""A burn-in includes DCGM's level-3 diagnostic where dcgmi is installed (idle nodes)."""

from __future__ import annotations

from pathlib import Path

from hpresil import config
from hpresil.localcheck import burnin_dcgm

DCGM = Path(__file__).resolve().parents[2] / "fixtures" / "dcgm"


def _fakes(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text("#!/bin/sh\necho '{\"jobs\": []}'\n")
    (bin_dir / "dcgmi").write_text(
        f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\n'
        f"cat {DCGM / 'dcgm3_vc_r3_pass_with_skip.json'}\n"
    )
    for exe in bin_dir.iterdir():
        exe.chmod(0o755)
    return bin_dir


def test_installed_dcgmi_runs_level_3_on_an_idle_node(tmp_path: Path) -> None:
    bin_dir = _fakes(tmp_path)
    cfg = config.parse(
        {
            "slurm": {"bin_dir": str(bin_dir), "retries": 0},
            "dcgm": {"binary": str(bin_dir / "dcgmi")},
        }
    )
    results = burnin_dcgm(cfg, "n1")
    assert results and {r.check for r in results} == {"dcgm_diag"}
    assert all(r.status.value in ("ok", "unsupported") for r in results)
    assert "diag -r 3 -j" in (tmp_path / "calls").read_text()


def test_no_dcgmi_or_level_none_adds_nothing(tmp_path: Path) -> None:
    missing = config.parse({"dcgm": {"binary": str(tmp_path / "no-dcgmi")}})
    assert burnin_dcgm(missing, "n1") == []
    bin_dir = _fakes(tmp_path)
    off = config.parse({"dcgm": {"binary": str(bin_dir / "dcgmi")}, "burnin": {"dcgm_level": None}})
    assert burnin_dcgm(off, "n1") == []
    assert not (tmp_path / "calls").exists()
