"""The NVML double in tests: pynvml in this process talks to it through ctypes, as on a
GPU node it talks to NVIDIA's libnvidia-ml.so.1.

:func:`load` builds the double if needed and loads it with ``RTLD_GLOBAL`` before
pynvml loads its library: pynvml's ``CDLL("libnvidia-ml.so.1")`` is then answered by
the dynamic loader with the library already loaded under that soname. One build per
process (the r535 one, whose missing symbols are the point, runs in a subprocess:
:func:`run_in_subprocess`). The fixture ``nvml_double`` (registered in
tests/conftest.py) gives each test a fresh ``h100-sxm`` node with NVML initialised.
Once the double is loaded, tests marked ``gpu`` are skipped in that process: they must
reach a real driver (``pytest -m gpu``).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.labtools import gpu_double

SONAME = "libnvidia-ml.so.1"
_loaded: dict[str, ctypes.CDLL] = {}  # driver -> the library, at most one entry


def load(driver: str = "latest") -> ctypes.CDLL:
    """The double, loaded into this process so that pynvml uses it (once per process)."""
    if driver in _loaded:
        return _loaded[driver]
    if _loaded:
        (other,) = _loaded
        raise RuntimeError(
            f"this process already loaded the {other} NVML double; the {driver} one needs "
            "a process of its own (tests.nvmldouble.run_in_subprocess)"
        )
    gpu_double.build()
    _refuse_another_nvml()
    lib = ctypes.CDLL(str(gpu_double.library_dir(driver) / SONAME), mode=ctypes.RTLD_GLOBAL)
    by_soname = ctypes.CDLL(SONAME)  # what pynvml's CDLL(SONAME) will get
    if by_soname._handle != lib._handle:
        raise RuntimeError(
            f"{SONAME} resolves to {by_soname._name}, not the NVML double: another "
            "libnvidia-ml.so.1 was loaded into this process first"
        )
    _loaded[driver] = lib
    return lib


def _refuse_another_nvml() -> None:
    pynvml = sys.modules.get("pynvml")
    lib = getattr(pynvml, "nvmlLib", None)
    if lib is not None and not hasattr(lib, "nvml_double_build"):
        raise RuntimeError(
            f"pynvml already loaded {lib._name} (a real NVML?) in this process: the NVML "
            "double must be loaded first (tests.nvmldouble.load)"
        )


@dataclass
class NvmlDouble:
    """One node's state file, as the double in this process reads it."""

    path: Path
    node: str = "node1"

    def set_gpu(self, index: int, **fields: object) -> None:
        gpu_double.set_gpu(self.path, index, **fields)

    def set_node(self, **settings: object) -> None:
        gpu_double.set_node(self.path, **settings)

    def write(self, preset: str = "h100-sxm", gpus: int = 8, **node_settings: object) -> None:
        """A fresh file: ``gpus`` healthy GPUs of ``preset``."""
        gpu_double.write_node(self.path, self.node, preset=preset, gpus=gpus, **node_settings)

    def reset(self) -> None:
        gpu_double.reset(self.path)

    def read(self) -> dict[str, object]:
        return gpu_double.read(self.path)


@pytest.fixture
def nvml_double(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NvmlDouble]:
    """Eight healthy H100 SXM on node "node1", NVML initialised (shut down after)."""
    load()
    import pynvml

    double = NvmlDouble(tmp_path / "nvml-double.state")
    double.write()
    monkeypatch.setenv(gpu_double.STATE_ENV, str(double.path))
    pynvml.nvmlInit()
    yield double
    with suppress(pynvml.NVMLError_Uninitialized):  # the test shut down once too often
        pynvml.nvmlShutdown()


@contextmanager
def reading(
    path: Path, node: str = "node1", *, preset: str = "h100-sxm", gpus: int = 8
) -> Iterator[NvmlDouble]:
    """A fresh state file at ``path`` that pynvml in this process reads while the
    block runs (``$NVML_DOUBLE_STATE`` set, then restored); NVML is not initialised."""
    load()
    double = NvmlDouble(path, node)
    double.write(preset=preset, gpus=gpus)
    before = os.environ.get(gpu_double.STATE_ENV)
    os.environ[gpu_double.STATE_ENV] = str(path)
    try:
        yield double
    finally:
        if before is None:
            os.environ.pop(gpu_double.STATE_ENV, None)
        else:
            os.environ[gpu_double.STATE_ENV] = before


def run_in_subprocess(
    code: str, state: Path, driver: str = "latest", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -c code`` (the repository's .venv) with the double of ``driver`` and
    ``state`` in its environment: for the r535 build and for crashes."""
    gpu_double.build()
    python = gpu_double.REPO / ".venv" / "bin" / "python"
    return subprocess.run(
        [str(python if python.exists() else sys.executable), "-c", code],
        env={**os.environ, **gpu_double.env(state, driver)},
        cwd=gpu_double.REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    if _loaded and item.get_closest_marker("gpu") is not None:
        pytest.skip("the NVML double is loaded in this process; run `pytest -m gpu` alone")
