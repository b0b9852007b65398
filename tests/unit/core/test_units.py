"""The systemd units: valid, and hardened to systemd's exposure score of 4.0 or less
(``systemd-analyze`` works offline, without systemd as PID 1)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[3] / "systemd"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
# --threshold counts on a 0-100 scale where the report prints 0.0-10.0: 40 is 4.0.
THRESHOLD = 40


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60)


@needs_analyze
@pytest.mark.parametrize("unit", ["hpresil-controller.service", "hpresil-agent.service"])
def test_exposure_is_at_most_4(unit: str) -> None:
    done = analyze("security", "--offline=yes", f"--threshold={THRESHOLD}", str(UNITS / unit))
    overall = [line for line in done.stdout.splitlines() if "Overall exposure" in line]
    assert done.returncode == 0, overall or done.stderr


@needs_analyze
@pytest.mark.parametrize("unit", ["hpresil-controller.service", "hpresil-agent.service"])
def test_every_setting_is_understood(unit: str, tmp_path: Path) -> None:
    """``systemd-analyze verify`` warns about unknown keys and bad values; the
    command is swapped for one that exists here (hpresil is not installed at
    /usr/local/bin in a checkout)."""
    text = (UNITS / unit).read_text()
    assert "ExecStart=/usr/local/bin/hpresil " in text
    copy = tmp_path / unit
    copy.write_text(text.replace("ExecStart=/usr/local/bin/hpresil ", "ExecStart=/bin/true "))
    done = analyze("verify", str(copy))
    assert (done.returncode, done.stderr) == (0, "")


@needs_analyze
def test_the_replica_drop_in_is_understood_and_keeps_the_score(tmp_path: Path) -> None:
    """The controller with systemd/hpresil-controller.service.d/replica.conf: a drop-in's
    settings are read as if they followed the unit's (systemd.unit(5))."""
    unit = (UNITS / "hpresil-controller.service").read_text()
    drop_in = (UNITS / "hpresil-controller.service.d" / "replica.conf").read_text()
    merged = tmp_path / "hpresil-controller.service"
    text = unit.replace("[Install]", drop_in + "\n[Install]")  # sections may repeat
    merged.write_text(text.replace("ExecStart=/usr/local/bin/hpresil ", "ExecStart=/bin/true "))
    done = analyze("verify", str(merged))
    assert (done.returncode, done.stderr) == (0, "")
    done = analyze("security", "--offline=yes", f"--threshold={THRESHOLD}", str(merged))
    assert done.returncode == 0, done.stdout[-300:]
