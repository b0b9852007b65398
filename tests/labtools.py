"""The lab's own tooling in scripts/ (stand-ins for hardware at its boundary: the NVML
double's state files, the InfiniBand sysfs trees), importable from the tests."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

import gpu_double  # noqa: E402
import ib_sysfs  # noqa: E402

__all__ = ["SCRIPTS", "gpu_double", "ib_sysfs"]
