"""What the lab's stand-in GPU tools (scripts/lab-tools) read from a node's NVML-double
state, and the two sidecar files they alone own. Stdlib only.

The stand-ins (``gpu_burn``, ``all_reduce_perf``, ``dcgmi``, ``nvidia-smi``) find the
state file through ``$NVML_DOUBLE_STATE`` (:data:`gpu_double.STATE_ENV`), as the NVML
double itself does, and see the GPUs as NVML does: those with ``present`` true, numbered
in file order (:attr:`Gpu.index`; :attr:`Gpu.number` is the GPU's number in the file,
as :func:`gpu_double.set_gpu` takes it).

A GPU is *faulty* when any of these holds (the words are :attr:`Gpu.faults`):

* ``lost``: ``lost`` is true (fallen off the bus);
* ``ecc``: ``ecc_volatile_uncorrected_dram`` + ``ecc_volatile_uncorrected_sram`` > 0;
* ``row_remap_pending``: ``row_remap_pending`` is true;
* ``row_remap_failure``: ``row_remap_failure`` is true;
* ``broken``: its number is in ``<state>.broken`` (a JSON list): broken for good.

A GPU reset (the ``nvidia-smi`` stand-in, :func:`clear_transient`) puts the
:data:`TRANSIENT_FIELDS` back to the preset's healthy values, as a real reset clears
the volatile ECC counters and applies pending row remaps. It leaves ``lost``, a row
remap failure (damaged memory) and ``<state>.broken`` as they are. ``<state>.reset``
holding ``busy`` makes every reset refused, as a fabric manager holding an NVSwitch
system's GPUs does.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import gpu_double  # scripts/ is on sys.path: the stand-ins and tests/labtools.py put it there

STATE_ENV = gpu_double.STATE_ENV
BROKEN_SUFFIX = ".broken"
RESET_SUFFIX = ".reset"

LOST, ECC, REMAP_PENDING, REMAP_FAILURE, BROKEN = (
    "lost",
    "ecc",
    "row_remap_pending",
    "row_remap_failure",
    "broken",
)
UNCORRECTED_FIELDS = ("ecc_volatile_uncorrected_dram", "ecc_volatile_uncorrected_sram")
TRANSIENT_FIELDS = (
    *UNCORRECTED_FIELDS,
    "ecc_volatile_corrected_dram",
    "ecc_volatile_corrected_sram",
    "row_remap_pending",
)


@dataclass(frozen=True)
class Gpu:
    """One GPU as the stand-ins see it."""

    index: int  # NVML's (and CUDA's) index: present GPUs only, in file order
    number: int  # its number in the state file (gpu_double.set_gpu's index)
    name: str
    uuid: str
    serial: str
    pci_bus_id: str  # NVML's form, 00000000:18:00.0
    device_id: int  # PCI device id, 0x2330 for an H100 SXM
    memory_mib: int
    temperature_c: int
    power_w: int
    uncorrected: int  # volatile uncorrectable ECC errors
    faults: tuple[str, ...]

    @property
    def faulty(self) -> bool:
        return bool(self.faults)

    @property
    def lost(self) -> bool:
        return LOST in self.faults


@dataclass(frozen=True)
class Node:
    path: Path
    name: str
    preset: str
    driver_version: str
    gpus: tuple[Gpu, ...]


def state_path() -> Path:
    """The state file named by ``$NVML_DOUBLE_STATE``; SystemExit(2) without one."""
    value = os.environ.get(STATE_ENV)
    if not value:
        prog = Path(sys.argv[0]).name
        sys.exit(f"{prog}: lab stand-in: ${STATE_ENV} is not set (the lab sets it)")
    return Path(value)


def node(path: str | os.PathLike[str]) -> Node:
    """The node's GPUs (present ones only) and what is wrong with each."""
    target = Path(path)
    state = gpu_double.read(target)
    dead = broken(target)
    listed = state["gpus"]
    assert isinstance(listed, list)
    gpus: list[Gpu] = []
    for number, raw in enumerate(listed):
        if raw["present"] is False:
            continue
        gpus.append(_gpu(len(gpus), number, raw, number in dead))
    return Node(
        target,
        str(state["node"]),
        str(state["preset"]),
        str(state.get("driver_version") or ""),
        tuple(gpus),
    )


def broken(path: str | os.PathLike[str]) -> set[int]:
    """The GPUs (numbers in the state file) broken for good: ``<state>.broken``."""
    return _broken(path)


def set_broken(path: str | os.PathLike[str], gpu: int, broken: bool = True) -> None:
    """Mark GPU ``gpu`` (its number in the state file) broken for good, or not."""
    if not _gpu_number(gpu):
        raise ValueError(f"{gpu!r} is not a GPU number")
    now = _broken(path)
    now = now | {gpu} if broken else now - {gpu}
    _write(_sidecar(path, BROKEN_SUFFIX), json.dumps(sorted(now)) + "\n")


def _broken(path: str | os.PathLike[str]) -> set[int]:
    side = _sidecar(path, BROKEN_SUFFIX)
    try:
        listed = json.loads(side.read_text())
    except FileNotFoundError:
        return set()
    if not isinstance(listed, list) or not all(_gpu_number(v) for v in listed):
        raise ValueError(f"{side}: not a JSON list of GPU numbers")
    return set(listed)


def reset_busy(path: str | os.PathLike[str]) -> bool:
    """Whether every GPU reset is refused: ``<state>.reset`` says ``busy``."""
    try:
        return _sidecar(path, RESET_SUFFIX).read_text().strip() == "busy"
    except FileNotFoundError:
        return False


def set_reset_busy(path: str | os.PathLike[str], busy: bool = True) -> None:
    """Make every GPU reset refused (a fabric manager holds the GPUs), or not."""
    side = _sidecar(path, RESET_SUFFIX)
    if busy:
        _write(side, "busy\n")
    else:
        side.unlink(missing_ok=True)


def clear_transient(path: str | os.PathLike[str], number: int, preset: str) -> None:
    """What a GPU reset clears, back to ``preset``'s healthy values."""
    healthy = gpu_double.PRESETS[preset]
    gpu_double.set_gpu(path, number, **{f: healthy[f] for f in TRANSIENT_FIELDS})


def _gpu(index: int, number: int, raw: dict[str, object], dead: bool) -> Gpu:
    uncorrected = sum(_int(raw[f]) for f in UNCORRECTED_FIELDS)
    checks = (
        (LOST, raw["lost"] is True),
        (ECC, uncorrected > 0),
        (REMAP_PENDING, raw["row_remap_pending"] is True),
        (REMAP_FAILURE, raw["row_remap_failure"] is True),
        (BROKEN, dead),
    )
    return Gpu(
        index=index,
        number=number,
        name=str(raw["name"]),
        uuid=str(raw["uuid"]),
        serial=str(raw["serial"]),
        pci_bus_id=str(raw["pci_bus_id"]),
        device_id=_int(raw["pci_device_id"]) >> 16,
        memory_mib=_int(raw["memory_total_mib"]),
        temperature_c=_int(raw["temperature_c"]),
        power_w=_int(raw["power_mw"]) // 1000,
        uncorrected=uncorrected,
        faults=tuple(word for word, bad in checks if bad),
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _gpu_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _sidecar(path: str | os.PathLike[str], suffix: str) -> Path:
    target = Path(path)
    return target.with_name(target.name + suffix)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
