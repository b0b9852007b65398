"""Checkpoint layouts on disk, written by scripts/lab-jobs/layouts.py (the same writer
the lab's stand-in training job uses), each in its framework's write order."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

LAYOUTS = Path(__file__).resolve().parents[3] / "scripts" / "lab-jobs" / "layouts.py"


def load_layouts() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hpresil_test_layouts", LAYOUTS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def layouts() -> ModuleType:
    return load_layouts()


def cut(path: Path, keep: int | None = None) -> None:
    """Truncate ``path`` as a writer killed mid-file leaves it (half, or ``keep`` bytes)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep is None else keep])
