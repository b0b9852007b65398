"""The simulation backend: GPUs described by a per-node JSON state file.

For labs and game days without GPUs. The file (``agent.gpu.state_file``, ``{node}``
expanded) is created on first use with eight "NVIDIA H100 80GB HBM3" GPUs on the
PCI addresses of a typical HGX board, with identities derived from the node name so
that every run sees the same UUIDs and serials. Faults are injected by changing the
file with :func:`set_gpu_state` (atomic replace, so a reading agent never sees half a
file) and undone with :func:`reset_state`.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hpresil.adapters.gpu.base import GpuSample
from hpresil.config import expand
from hpresil.errors import GpuError
from hpresil.fsutil import atomic_write
from hpresil.vocab import GpuIdentity

GPU_NAME = "NVIDIA H100 80GB HBM3"
BUS_IDS = (
    "0000:18:00",
    "0000:2a:00",
    "0000:3a:00",
    "0000:5d:00",
    "0000:9a:00",
    "0000:ab:00",
    "0000:ba:00",
    "0000:db:00",
)
_NAMESPACE = uuid.UUID("6f1c3e1e-5a0b-4d0e-9a43-8d1f5e0c2b7a")  # hpresil simulation
SETTABLE = frozenset(
    {"present", "lost", "ecc_uncorrected_volatile", "ecc_corrected_volatile", "temperature_c"}
)


class SimGpu(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0)
    uuid: str
    serial: str
    pci_bus_id: str
    name: str = GPU_NAME
    present: bool = True  # False: the GPU no longer enumerates (fewer GPUs than expected)
    lost: bool = False
    ecc_uncorrected_volatile: int | None = Field(default=0, ge=0)
    ecc_corrected_volatile: int | None = Field(default=0, ge=0)
    temperature_c: int | None = 35


class SimState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node: str
    gpus: list[SimGpu]


def initial_state(node: str) -> SimState:
    """Eight healthy GPUs with identities that depend only on the node name."""
    gpus = []
    for index, bus_id in enumerate(BUS_IDS):
        ident = uuid.uuid5(_NAMESPACE, f"{node}/{index}")
        gpus.append(
            SimGpu(
                index=index,
                uuid=f"GPU-{ident}",
                serial=f"{ident.int % 10**13:013d}",
                pci_bus_id=bus_id,
            )
        )
    return SimState(node=node, gpus=gpus)


class SimulatedBackend:
    """Reads the state file on every ``devices()`` call."""

    def __init__(self, state_file: str | os.PathLike[str], node: str) -> None:
        self._path = expand(os.fspath(state_file), node)
        self._node = node

    def devices(self) -> list[GpuSample]:
        state = load_state(self._path, self._node)
        return [_sample(gpu) for gpu in state.gpus if gpu.present]

    def close(self) -> None:
        pass


def load_state(path: str | os.PathLike[str], node: str) -> SimState:
    """The node's state, created with :func:`initial_state` when the file is missing."""
    file = expand(os.fspath(path), node)
    with _os_errors(file):
        try:
            text = file.read_text()
        except FileNotFoundError:
            with _locked(file):
                if not file.exists():
                    _write(file, initial_state(node))
            text = file.read_text()
    return _parse(file, text)


def set_gpu_state(path: str | os.PathLike[str], node: str, index: int, **fields: Any) -> GpuSample:
    """Change one simulated GPU (fields: see ``SETTABLE``) and answer its new sample."""
    unknown = sorted(set(fields) - SETTABLE)
    if unknown:
        raise GpuError(f"simulated GPU: unknown field {unknown[0]!r} (valid: {sorted(SETTABLE)})")
    file = expand(os.fspath(path), node)
    load_state(file, node)  # create it if needed
    with _os_errors(file), _locked(file):
        state = _parse(file, file.read_text())
        gpu = next((g for g in state.gpus if g.index == index), None)
        if gpu is None:
            raise GpuError(f"simulated GPU state {file}: node {node} has no GPU index {index}")
        try:
            new = SimGpu.model_validate({**gpu.model_dump(), **fields})
        except ValidationError as exc:
            raise GpuError(f"simulated GPU {index}: {_first_error(exc)}") from None
        state.gpus[state.gpus.index(gpu)] = new
        _write(file, state)
    return _sample(new)


def reset_state(path: str | os.PathLike[str], node: str) -> None:
    """Back to eight healthy GPUs."""
    file = expand(os.fspath(path), node)
    with _os_errors(file), _locked(file):
        _write(file, initial_state(node))


def _sample(gpu: SimGpu) -> GpuSample:
    identity = GpuIdentity(
        index=gpu.index, uuid=gpu.uuid, serial=gpu.serial, pci_bus_id=gpu.pci_bus_id, name=gpu.name
    )
    if gpu.lost:  # like NVML: a lost GPU answers nothing
        return GpuSample(identity=identity, lost=True)
    return GpuSample(
        identity=identity,
        ecc_uncorrected_volatile=gpu.ecc_uncorrected_volatile,
        ecc_corrected_volatile=gpu.ecc_corrected_volatile,
        temperature_c=gpu.temperature_c,
    )


def _parse(file: Path, text: str) -> SimState:
    try:
        return SimState.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise GpuError(f"simulated GPU state {file}: not valid JSON ({exc.msg})") from None
    except ValidationError as exc:
        raise GpuError(f"simulated GPU state {file}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return f"{key}: {err['msg']}"


def _write(file: Path, state: SimState) -> None:
    atomic_write(file, state.model_dump_json(indent=2) + "\n")


@contextmanager
def _os_errors(file: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise GpuError(f"simulated GPU state {file}: {exc.strerror or exc}") from None


@contextmanager
def _locked(file: Path) -> Iterator[None]:
    """Serialise read-modify-write between injecting processes."""
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file.with_name(file.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
