"""The Slurm hook program: fail-closed only on a fresh failing verdict, else fail-open."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

HOOK = Path(__file__).resolve().parents[3] / "slurm-plugins" / "hpresil-hook"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "hpresil.toml").write_text(
        f'[agent]\ncache_file = "{tmp_path}/{{node}}.verdict.json"\n'
    )
    return tmp_path


def verdict(site: Path, status: str, *, age_s: float = 0.0, summary: str = "") -> Path:
    path = site / "n1.verdict.json"
    results = [{"check": "ecc", "status": status, "summary": summary}]
    path.write_text(json.dumps({"node": "n1", "status": status, "results": results}))
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def hook(site: Path, mode: str) -> subprocess.CompletedProcess[str]:
    env = {"HPRESIL_CONFIG": str(site / "hpresil.toml"), "SLURMD_NODENAME": "n1"}
    return subprocess.run(
        ["/usr/bin/python3", "-I", str(HOOK), mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_prolog_refuses_a_node_with_a_fresh_failing_verdict(site: Path) -> None:
    verdict(site, "fail", summary="uncorrectable ECC on GPU 5")
    done = hook(site, "prolog")
    assert done.returncode == 1
    assert "uncorrectable ECC on GPU 5" in done.stderr


@pytest.mark.parametrize(("status", "age_s"), [("ok", 0.0), ("warn", 0.0), ("fail", 600.0)])
def test_prolog_lets_jobs_start_unless_fresh_fail(site: Path, status: str, age_s: float) -> None:
    verdict(site, status, age_s=age_s)
    assert hook(site, "prolog").returncode == 0


def test_prolog_fails_open_without_a_verdict_or_with_garbage(site: Path) -> None:
    assert hook(site, "prolog").returncode == 0
    (site / "n1.verdict.json").write_text("{not json")
    assert hook(site, "prolog").returncode == 0


def test_prolog_fails_open_with_an_unreadable_config(site: Path) -> None:
    verdict(site, "fail")
    (site / "hpresil.toml").write_text("[agent\n")  # broken TOML: defaults, no verdict found
    assert hook(site, "prolog").returncode == 0


def test_epilog_never_fails_but_logs(site: Path) -> None:
    verdict(site, "fail", summary="gpu lost")
    done = hook(site, "epilog")
    assert done.returncode == 0 and "gpu lost" in done.stderr


def test_unknown_mode_is_a_usage_error(site: Path) -> None:
    done = hook(site, "bogus")
    assert done.returncode == 2 and "usage" in done.stderr
