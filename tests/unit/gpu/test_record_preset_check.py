"""scripts/record-gpu-fixture checks the NVML double's preset against a recording:
a figure that differs is named; the preset read against itself is "the same"."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.labtools import SCRIPTS, gpu_double
from tests.nvmldouble import run_in_subprocess

DUMP = (
    "from hpresil.adapters.gpu.dump import samples_to_json\n"
    "from hpresil.adapters.gpu.nvml import NvmlBackend\n"
    "print(samples_to_json(NvmlBackend().devices()))\n"
)


def recorder() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader(
        "record_gpu_fixture", str(SCRIPTS / "record-gpu-fixture")
    )
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def recording(tmp_path: Path, **changes: object) -> list[dict[str, object]]:
    """What an H100 node would record, read through the NVML backend (a child process)."""
    state = tmp_path / "recorded.state"
    gpu_double.write_node(state, "gpu-node", preset="h100-sxm", gpus=2)
    gpu_double.set_gpu(state, 0, **changes)
    done = run_in_subprocess(DUMP, state)
    assert done.returncode == 0, done.stderr
    samples: list[dict[str, object]] = json.loads(done.stdout)
    return samples


def test_each_differing_static_figure_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder().compare_with_preset(recording(tmp_path, temp_shutdown_c=92, nvlink_links=12))
    out = capsys.readouterr().out
    assert "preset h100-sxm against this NVIDIA H100 80GB HBM3: 2 difference(s)" in out
    assert "thermal.shutdown_c: recorded 92, preset 95" in out
    assert "nvlink links: recorded 12, preset 18" in out


def test_a_recording_that_matches_the_preset_is_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder().compare_with_preset(recording(tmp_path, temperature_c=61, power_mw=400_000))
    assert "h100-sxm against this NVIDIA H100 80GB HBM3: the same" in capsys.readouterr().out
