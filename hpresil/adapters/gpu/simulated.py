"""The simulation backend: GPUs described by a per-node JSON state file.

For labs and game days without GPUs. The file (``agent.gpu.state_file``, ``{node}``
expanded) is created on first use with eight "NVIDIA H100 80GB HBM3" GPUs on the
PCI addresses of a typical HGX board, with identities derived from the node name so
that every run sees the same UUIDs and serials. Faults are injected by changing the
file with :func:`set_gpu_state` (atomic replace, so a reading agent never sees half a
file) and undone with :func:`reset_state`.

Healthy defaults are an idle H100 SXM5 on an HGX board: ECC on, row remapping with
nothing remapped (page retirement unsupported, as on every GPU since Ampere), PCIe
Gen5 x16, 18 NVLinks active, fabric COMPLETED/success, 700 W power limit (the SXM5
TDP, as nvidia-smi shows it on such boards), temperature thresholds shutdown 92,
slowdown 89, GPU max 87, memory max 95 degrees C (the last three: recalled H100 SXM
values, to be confirmed with scripts/record-gpu-fixture; the A100 SXM4 recording in
tests/fixtures/gpu shows 92/89/85/95). A field set to None reads as unsupported.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hpresil.adapters.gpu.base import GpuSample
from hpresil.adapters.gpu.records import (
    ClockEvents,
    EccCounts,
    EccInfo,
    Fabric,
    FabricState,
    NvLink,
    Pcie,
    Power,
    RetiredPages,
    RowRemap,
    Thermal,
)
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
H100_LINKS = 18
Count = int | None


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
    utilization_pct: int | None = Field(default=0, ge=0, le=100)
    ecc_enabled: bool | None = True
    ecc_uncorrected_aggregate: Count = Field(default=0, ge=0)
    ecc_corrected_aggregate: Count = Field(default=0, ge=0)  # DRAM
    ecc_sram_corrected_aggregate: Count = Field(default=0, ge=0)
    ecc_sram_threshold_exceeded: bool | None = False
    row_remap_correctable: Count = Field(default=0, ge=0)  # None: no row remapping
    row_remap_uncorrectable: int = Field(default=0, ge=0)
    row_remap_pending: bool = False
    row_remap_failure: bool = False
    retired_pages_sbe: Count = Field(default=None, ge=0)  # None: no page retirement
    retired_pages_dbe: int = Field(default=0, ge=0)
    retired_pages_pending: bool = False
    memory_temperature_c: int | None = 40
    temp_shutdown_c: int | None = 92
    temp_slowdown_c: int | None = 89
    temp_gpu_max_c: int | None = 87
    temp_mem_max_c: int | None = 95
    clock_event_reasons: Count = Field(default=0x1, ge=0)  # GPU idle
    power_w: float | None = Field(default=70.0, ge=0)
    power_limit_w: float | None = Field(default=700.0, ge=0)
    pcie_gen: Count = Field(default=5, ge=1)
    pcie_gen_max: Count = Field(default=5, ge=1)
    pcie_width: Count = Field(default=16, ge=1)
    pcie_width_max: Count = Field(default=16, ge=1)
    pcie_replays: Count = Field(default=0, ge=0)
    nvlink_links: int = Field(default=H100_LINKS, ge=0, le=36)  # 0: no NVLink
    nvlink_down: list[int] = Field(default_factory=list)
    nvlink_replay: dict[int, int] = Field(default_factory=dict)  # link -> count
    nvlink_recovery: dict[int, int] = Field(default_factory=dict)
    nvlink_crc_flit: dict[int, int] = Field(default_factory=dict)
    nvlink_crc_data: dict[int, int] = Field(default_factory=dict)
    fabric_state: Literal["not_supported", "not_started", "in_progress", "completed"] = "completed"
    fabric_status: str = "success"
    recovery_action: Count = Field(default=0, ge=0)


SETTABLE = frozenset(SimGpu.model_fields) - {"index", "uuid", "serial", "pci_bus_id"}


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
            new = SimGpu.model_validate(_merged(gpu.model_dump(), fields))
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


def _merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``current`` with ``changes``; per-link counters are merged link by link."""
    out = {**current, **changes}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            out[key] = {**current[key], **value}
    return out


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
        utilization_pct=gpu.utilization_pct,
        ecc=_ecc(gpu),
        row_remap=_row_remap(gpu),
        retired_pages=_retired_pages(gpu),
        thermal=Thermal(
            memory_c=gpu.memory_temperature_c,
            shutdown_c=gpu.temp_shutdown_c,
            slowdown_c=gpu.temp_slowdown_c,
            gpu_max_c=gpu.temp_gpu_max_c,
            mem_max_c=gpu.temp_mem_max_c,
        ),
        clock_events=None
        if gpu.clock_event_reasons is None
        else ClockEvents(reasons=gpu.clock_event_reasons),
        power=Power(draw_w=gpu.power_w, limit_w=gpu.power_limit_w),
        pcie=Pcie(
            gen=gpu.pcie_gen,
            max_gen=gpu.pcie_gen_max,
            width=gpu.pcie_width,
            max_width=gpu.pcie_width_max,
            replays=gpu.pcie_replays,
        ),
        nvlink=_nvlink(gpu),
        fabric=None
        if gpu.fabric_state == "not_supported"
        else Fabric(state=FabricState(gpu.fabric_state), status=gpu.fabric_status),
        recovery_action=gpu.recovery_action,
    )


def _ecc(gpu: SimGpu) -> EccInfo | None:
    if gpu.ecc_enabled is None:
        return None
    return EccInfo(
        enabled=gpu.ecc_enabled,
        pending_enabled=gpu.ecc_enabled,
        volatile=EccCounts(
            corrected=gpu.ecc_corrected_volatile,
            uncorrected=gpu.ecc_uncorrected_volatile,
            dram_corrected=gpu.ecc_corrected_volatile,
            dram_uncorrected=gpu.ecc_uncorrected_volatile,
        ),
        aggregate=EccCounts(
            corrected=_add(gpu.ecc_corrected_aggregate, gpu.ecc_sram_corrected_aggregate),
            uncorrected=gpu.ecc_uncorrected_aggregate,
            dram_corrected=gpu.ecc_corrected_aggregate,
            dram_uncorrected=gpu.ecc_uncorrected_aggregate,
            sram_corrected=gpu.ecc_sram_corrected_aggregate,
            sram_uncorrected=0,
        ),
        sram_threshold_exceeded=gpu.ecc_sram_threshold_exceeded,
    )


def _row_remap(gpu: SimGpu) -> RowRemap | None:
    if gpu.row_remap_correctable is None:
        return None
    return RowRemap(
        correctable=gpu.row_remap_correctable,
        uncorrectable=gpu.row_remap_uncorrectable,
        pending=gpu.row_remap_pending,
        failure=gpu.row_remap_failure,
    )


def _retired_pages(gpu: SimGpu) -> RetiredPages | None:
    if gpu.retired_pages_sbe is None:
        return None
    return RetiredPages(
        single_bit=gpu.retired_pages_sbe,
        double_bit=gpu.retired_pages_dbe,
        pending=gpu.retired_pages_pending,
    )


def _nvlink(gpu: SimGpu) -> tuple[NvLink, ...] | None:
    if gpu.nvlink_links == 0:
        return None
    return tuple(
        NvLink(
            link=link,
            active=link not in gpu.nvlink_down,
            replay=gpu.nvlink_replay.get(link, 0),
            recovery=gpu.nvlink_recovery.get(link, 0),
            crc_flit=gpu.nvlink_crc_flit.get(link, 0),
            crc_data=gpu.nvlink_crc_data.get(link, 0),
        )
        for link in range(gpu.nvlink_links)
    )


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


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
