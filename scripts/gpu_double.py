#!/usr/bin/env python3
"""State files of the NVML double (scripts/nvml-double), with GPU presets and a CLI.

The double is a C library named ``libnvidia-ml.so.1`` that pynvml loads instead of
NVIDIA's when ``LD_LIBRARY_PATH`` starts with :func:`library_dir`; it answers from the
text file named by ``$NVML_DOUBLE_STATE`` (:func:`env` gives both variables) and
re-reads it when it changes, so GPU state can change under a running agent. This module
writes those files: one per node, GPUs from a preset with identities derived from the
node name (stable across runs), changed by :func:`set_gpu` (atomic replace under an
flock on ``<state>.lock``). Stdlib only: the lab, the demo, the benchmarks and the
tests import it with ``scripts/`` on ``sys.path``.

    gpu_double.py create STATE --node node1 [--preset h100-sxm] [--gpus 8]
    gpu_double.py set STATE --gpu 3 lost=true nvlink_replay.4=12 fail.nvmlDeviceGetPowerUsage=999
    gpu_double.py set STATE init_error=9          # a node setting (no --gpu)
    gpu_double.py reset STATE                     # the preset's healthy GPUs again
    gpu_double.py show STATE                      # JSON
    gpu_double.py env STATE [--driver r535]       # shell exports for a process using it

A field set to None (``NA`` on the command line) makes its NVML query answer
NVML_ERROR_NOT_SUPPORTED. Values are checked here and again by the C library, which
answers nvmlInit with NVML_ERROR_DRIVER_NOT_LOADED for a file it cannot read.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE_ENV = "NVML_DOUBLE_STATE"
BUILD_SCRIPT = REPO / "scripts" / "nvml-double" / "build"
DRIVERS = ("latest", "r535")  # r535: without the NVML 12.4+ symbols, field 230 unsupported
HEADER = "# hpresil NVML double state, v1"
MAX_GPUS = 64  # the C library's limit
MAX_LINKS = 64
_NAMESPACE = uuid.UUID("9d0c6a52-31f4-4e83-a0a8-6f0b6c3a2d11")  # hpresil NVML double

# PCI bus ids of the eight GPUs of a typical HGX board (more GPUs: the next domain)
HGX_BUSES = ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")

# Field kinds
INT, BOOL, TEXT, UUID, LINKS, PER_LINK, FAILS, TYPES = (
    "int",
    "bool",
    "text",
    "uuid",
    "links",
    "per_link",
    "fails",
    "types",
)
DICT_KINDS = (PER_LINK, FAILS, TYPES)

# Every GPU field: its name in set_gpu, read and the state file, and its kind.
FIELDS: dict[str, str] = {
    # identity (present False: the GPU does not enumerate; lost True: fallen off the bus)
    "name": TEXT,
    "uuid": TEXT,
    "serial": TEXT,
    "pci_bus_id": TEXT,
    "minor_number": INT,
    "present": BOOL,
    "lost": BOOL,
    "persistence_mode": BOOL,
    "pci_device_id": INT,
    "pci_subsystem_id": INT,
    "memory_total_mib": INT,
    "memory_reserved_mib": INT,
    "memory_used_mib": INT,
    # thermal, utilization
    "temperature_c": INT,
    "memory_temperature_c": INT,  # field 82
    "utilization_pct": INT,
    "memory_utilization_pct": INT,
    "temp_shutdown_c": INT,
    "temp_slowdown_c": INT,
    "temp_gpu_max_c": INT,
    "temp_mem_max_c": INT,
    # ECC (dram: device memory; nvmlDeviceGetTotalEccErrors answers dram + sram)
    "ecc_enabled": BOOL,
    "ecc_pending_enabled": BOOL,
    "ecc_volatile_corrected_dram": INT,
    "ecc_volatile_corrected_sram": INT,
    "ecc_volatile_uncorrected_dram": INT,
    "ecc_volatile_uncorrected_sram": INT,
    "ecc_aggregate_corrected_dram": INT,
    "ecc_aggregate_corrected_sram": INT,
    "ecc_aggregate_uncorrected_dram": INT,
    "ecc_aggregate_uncorrected_sram": INT,
    "sram_threshold_exceeded": BOOL,
    # row remapping (any None: NOT_SUPPORTED) and page retirement
    "row_remap_correctable": INT,
    "row_remap_uncorrectable": INT,
    "row_remap_pending": BOOL,
    "row_remap_failure": BOOL,
    "retired_pages_sbe": INT,
    "retired_pages_dbe": INT,
    "retired_pages_pending": BOOL,
    # clock events: bit masks, and cumulative nanoseconds (fields 74, 76, 269, 270, 271)
    "clock_event_reasons": INT,
    "clock_event_reasons_supported": INT,
    "clock_counter_sw_power_cap_ns": INT,
    "clock_counter_sync_boost_ns": INT,
    "clock_counter_sw_thermal_ns": INT,
    "clock_counter_hw_thermal_ns": INT,
    "clock_counter_hw_power_brake_ns": INT,
    # power (milliwatts), PCIe
    "power_mw": INT,
    "power_limit_mw": INT,
    "pcie_gen": INT,
    "pcie_gen_max": INT,
    "pcie_width": INT,
    "pcie_width_max": INT,
    "pcie_replays": INT,
    # NVLink: link count (0: no NVLink), inactive links, per-link error counters
    "nvlink_links": INT,
    "nvlink_down": LINKS,
    "nvlink_replay": PER_LINK,
    "nvlink_recovery": PER_LINK,
    "nvlink_crc_flit": PER_LINK,
    "nvlink_crc_data": PER_LINK,
    # fabric (state None: NOT_SUPPORTED, as on Ampere; 0..3: NVML_GPU_FABRIC_STATE_*)
    "fabric_state": INT,
    "fabric_status": INT,  # an nvmlReturn_t
    "fabric_clique_id": INT,
    "fabric_cluster_uuid": UUID,
    "fabric_health_mask": INT,
    "fabric_health_summary": INT,
    "recovery_action": INT,  # field 230
    # for tests: the nvmlValueType_t a field answers with, and injected return codes
    "field_types": TYPES,  # {field id: 0..6}
    "fail": FAILS,  # {"nvmlDeviceGetPowerUsage": 999}
}
NEVER_NA = frozenset({"name", "uuid", "serial", "pci_bus_id", "present", "lost", "nvlink_links"})

# Node settings and their kinds (set_node, write_node's keywords).
NODE_SETTINGS: dict[str, str] = {
    "driver_version": TEXT,
    "nvml_version": TEXT,
    "cuda_driver_version": INT,
    "fabric_info_versions": LINKS,  # nvmlGpuFabricInfo_v<N> versions FabricInfoV accepts
    "init_error": INT,  # what nvmlInit answers (0: success)
}
_DRIVER_550 = {  # the r550 branch (NVML 12.550): GpuFabricInfoV and SRAM ECC status exist
    "driver_version": "550.54.15",
    "nvml_version": "12.550.54.15",
    "cuda_driver_version": 12040,
    "fabric_info_versions": [2, 3],
    "init_error": 0,
}
NODE_PRESETS: dict[str, dict[str, object]] = {
    "h100-sxm": dict(_DRIVER_550),
    "h200-sxm": dict(_DRIVER_550),
    "a100-sxm4": dict(_DRIVER_550),  # the recording ran 535.54.03; the r535 build for that
}

# Sources: [H100-REC] NVIDIA/k8s-test-infra tests/e2e/go/assertions/nvidiasmi/testdata/
# hardware/qx-h100.xml (a real `nvidia-smi -q -x`, 8x H100 80GB HBM3, driver 580.105.08);
# [A100-REC] tests/fixtures/gpu/a100-sxm4-80gb-mig-535.54.03.xml (real, 535.54.03);
# [DS] NVIDIA's datasheets; (unverified): no public source found.
_HEALTHY: dict[str, object] = {
    "present": True,
    "lost": False,
    "memory_used_mib": 0,
    "temperature_c": 35,
    "memory_temperature_c": 40,
    "utilization_pct": 0,
    "memory_utilization_pct": 0,
    "ecc_enabled": True,
    "ecc_pending_enabled": True,
    **{
        f"ecc_{c}_{k}_{m}": 0
        for c in ("volatile", "aggregate")
        for k in ("corrected", "uncorrected")
        for m in ("dram", "sram")
    },
    "sram_threshold_exceeded": False,
    "row_remap_correctable": 0,  # [H100-REC] 0/0, not pending, no failure
    "row_remap_uncorrectable": 0,
    "row_remap_pending": False,
    "row_remap_failure": False,
    "retired_pages_sbe": None,  # [H100-REC] N/A: no page retirement since Ampere
    "retired_pages_dbe": None,
    "retired_pages_pending": None,
    "clock_event_reasons": 0x1,  # GPU idle [H100-REC]
    "clock_event_reasons_supported": 0x1FF,  # the nine reasons nvidia-smi lists (unverified)
    "clock_counter_sw_power_cap_ns": 0,
    "clock_counter_sync_boost_ns": 0,
    "clock_counter_sw_thermal_ns": 0,
    "clock_counter_hw_thermal_ns": 0,
    "clock_counter_hw_power_brake_ns": 0,
    "pcie_gen": 5,
    "pcie_gen_max": 5,  # [H100-REC] Gen5
    "pcie_width": 16,
    "pcie_width_max": 16,  # [H100-REC] x16
    "pcie_replays": 0,
    "nvlink_down": [],
    "nvlink_replay": {},
    "nvlink_recovery": {},
    "nvlink_crc_flit": {},
    "nvlink_crc_data": {},
    "fabric_state": 3,  # COMPLETED [H100-REC]
    "fabric_status": 0,  # success [H100-REC]
    # [H100-REC] one HGX board, no multi-node NVLink domain: clique 0, cluster UUID all
    # zeros (a GB200 NVL rack would set both: set_gpu(fabric_cluster_uuid=..., ...))
    "fabric_clique_id": 0,
    "fabric_cluster_uuid": "00000000-0000-0000-0000-000000000000",
    "fabric_health_mask": 0,  # [H100-REC] health N/A: every bit "not supported"
    "fabric_health_summary": 0,
    "recovery_action": 0,  # None [H100-REC]
    "field_types": {},
    "fail": {},
}
PRESETS: dict[str, dict[str, object]] = {
    "h100-sxm": {
        **_HEALTHY,
        "name": "NVIDIA H100 80GB HBM3",  # [H100-REC]
        "pci_device_id": 0x233010DE,  # [H100-REC]
        "pci_subsystem_id": 0x16C110DE,  # [H100-REC]
        "memory_total_mib": 81559,  # [H100-REC]
        "memory_reserved_mib": 480,  # [H100-REC]
        "persistence_mode": True,  # [H100-REC]
        # [H100-REC] gives thresholds relative to T.Limit: 29 C + 58 C margin = 87 C
        # (GPU max, margin 0); slowdown 2 C and shutdown 8 C above it (derived, +-1 C)
        "temp_gpu_max_c": 87,
        "temp_slowdown_c": 89,
        "temp_shutdown_c": 95,
        "temp_mem_max_c": 95,  # (unverified; the A100 recording shows 95)
        "power_mw": 70000,  # [H100-REC] 68.9 W idle
        "power_limit_mw": 700000,  # [H100-REC] 700 W; [DS] H100 SXM5 TDP up to 700 W
        "nvlink_links": 18,  # [DS] H100 SXM5: 18 NVLink 4 links, 900 GB/s
    },
    "h200-sxm": {
        **_HEALTHY,
        "name": "NVIDIA H200",  # (unverified)
        "pci_device_id": 0x233510DE,  # (unverified)
        "pci_subsystem_id": 0x18BE10DE,  # (unverified)
        "memory_total_mib": 143771,  # 141 GB [DS]; MiB as an H200 NVL reports it (unverified)
        "memory_reserved_mib": 480,  # (unverified; as the H100)
        "persistence_mode": True,
        "temp_gpu_max_c": 87,  # (unverified; as the H100)
        "temp_slowdown_c": 89,
        "temp_shutdown_c": 95,
        "temp_mem_max_c": 95,
        "power_mw": 75000,  # (unverified)
        "power_limit_mw": 700000,  # [DS] H200 SXM: up to 700 W
        "nvlink_links": 18,  # [DS] NVLink 4, 900 GB/s
    },
    "a100-sxm4": {
        **_HEALTHY,
        "name": "NVIDIA A100-SXM4-80GB",  # [A100-REC]
        "pci_device_id": 0x20B210DE,  # [A100-REC]
        "pci_subsystem_id": 0x147F10DE,  # [A100-REC]
        "memory_total_mib": 81920,  # [A100-REC]
        "memory_reserved_mib": 869,  # [A100-REC]
        "persistence_mode": False,  # [A100-REC]
        "temperature_c": 30,
        "memory_temperature_c": 44,  # [A100-REC]
        "temp_shutdown_c": 92,  # [A100-REC] 92/89/85, memory max 95
        "temp_slowdown_c": 89,
        "temp_gpu_max_c": 85,
        "temp_mem_max_c": 95,
        "clock_event_reasons": 0,  # [A100-REC] none active
        "power_mw": 67000,  # [A100-REC] 67.03 W
        "power_limit_mw": 400000,  # [DS] A100 SXM4 80GB 400 W (the recording's board: 500 W)
        "pcie_gen": 4,
        "pcie_gen_max": 4,  # [A100-REC] Gen4 x16
        "nvlink_links": 12,  # [DS] A100: 12 NVLink 3 links, 600 GB/s
        "fabric_state": None,  # [A100-REC] fabric N/A: Ampere answers NOT_SUPPORTED
        "fabric_status": None,
        "fabric_clique_id": None,
        "fabric_cluster_uuid": None,
        "fabric_health_mask": None,
        "fabric_health_summary": None,
    },
}

State = dict[str, object]


class GpuDoubleError(RuntimeError):
    """The double could not be built."""


# ---------- the library ----------


def library_dir(driver: str = "latest") -> Path:
    """The folder holding the double's ``libnvidia-ml.so.1`` (for ``LD_LIBRARY_PATH``)."""
    if driver not in DRIVERS:
        raise ValueError(f"unknown driver {driver!r}; choose from {', '.join(DRIVERS)}")
    return REPO / ".build" / "nvml-double" / driver


def build() -> None:
    """Build the double (both drivers) if a library is missing or out of date."""
    try:
        done = subprocess.run(
            [str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GpuDoubleError(f"cannot build the NVML double: {exc}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise GpuDoubleError(
            "cannot build the NVML double (scripts/setup installs gcc): "
            + (detail[-1] if detail else f"exit {done.returncode}")
        )


def env(path: str | os.PathLike[str], driver: str = "latest") -> dict[str, str]:
    """The variables that make pynvml load the double and read ``path``."""
    libs = [str(library_dir(driver))]
    if os.environ.get("LD_LIBRARY_PATH"):
        libs.append(os.environ["LD_LIBRARY_PATH"])
    return {"LD_LIBRARY_PATH": ":".join(libs), STATE_ENV: os.path.abspath(path)}


# ---------- state files ----------


def write_node(
    path: str | os.PathLike[str],
    node: str,
    *,
    preset: str = "h100-sxm",
    gpus: int = 8,
    **node_settings: object,
) -> None:
    """A fresh state file: ``gpus`` healthy GPUs of ``preset`` on ``node``."""
    state = _fresh(node, preset, gpus)
    for key, value in node_settings.items():
        state[key] = _node_value(key, value)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target):
        _write(target, state)


def set_gpu(path: str | os.PathLike[str], index: int, **fields: object) -> None:
    """Change GPU ``index`` (its number in the file, as written). None: unsupported
    (NA); dict fields merge per key (a key set to None is removed); lists replace."""
    changes = {name: _gpu_value(name, value) for name, value in fields.items()}
    target = Path(path)
    with _locked(target):
        state = _read(target)
        gpus = _gpus(state)
        if not 0 <= index < len(gpus):
            raise ValueError(f"{target} has no GPU {index} (it has 0..{len(gpus) - 1})")
        gpu = gpus[index]
        for name, value in changes.items():
            if FIELDS[name] in DICT_KINDS:
                merged = {**_mapping(gpu[name]), **_mapping(value)}
                gpu[name] = {k: v for k, v in merged.items() if v is not None}
            else:
                gpu[name] = value
        _write(target, state)


def set_node(path: str | os.PathLike[str], **settings: object) -> None:
    """Change node settings (``NODE_SETTINGS``): driver and NVML versions, the fabric
    struct versions accepted, nvmlInit's answer."""
    changes = {key: _node_value(key, value) for key, value in settings.items()}
    target = Path(path)
    with _locked(target):
        state = _read(target)
        state.update(changes)
        _write(target, state)


def reset(path: str | os.PathLike[str]) -> None:
    """Back to the file's own node and preset, every GPU healthy and present."""
    target = Path(path)
    with _locked(target):
        state = _read(target)
        _write(target, _fresh(str(state["node"]), str(state["preset"]), len(_gpus(state))))


def read(path: str | os.PathLike[str]) -> State:
    """``{"node", "preset", <node settings>, "gpus": [{field: value}]}``."""
    return _read(Path(path))


def parse_assignments(args: Sequence[str], *, node: bool = False) -> dict[str, object]:
    """``["lost=true", "nvlink_replay.4=12", "nvlink_down=1,2"]`` as keywords for
    :func:`set_gpu` (``node``: for :func:`set_node`). ``NA`` is None."""
    kinds = NODE_SETTINGS if node else FIELDS
    out: dict[str, object] = {}
    for arg in args:
        key, eq, text = arg.partition("=")
        name, dot, sub = key.partition(".")
        kind = kinds.get(name)
        if not eq or kind is None or bool(dot) != (kind in DICT_KINDS):
            valid = ", ".join(f"{k}.<key>" if v in DICT_KINDS else k for k, v in kinds.items())
            raise ValueError(f"cannot read {arg!r} as key=value; valid keys: {valid}")
        if kind in DICT_KINDS:
            entries = out.setdefault(name, {})
            assert isinstance(entries, dict)
            entries[sub if kind == FAILS else _int(sub, key)] = (
                None if text == "NA" else _int(text, key)
            )
        else:
            out[name] = _from_text(kind, text, key)
    return out


# ---------- internals ----------


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _fresh(node: str, preset: str, gpus: int) -> State:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    if not node or any(c.isspace() for c in node):
        raise ValueError(f"node name {node!r} must be one word")
    if not 1 <= gpus <= MAX_GPUS:
        raise ValueError(f"gpus must be 1..{MAX_GPUS}, not {gpus}")
    state: State = {"node": node, "preset": preset, **NODE_PRESETS[preset]}
    state["gpus"] = [_new_gpu(node, preset, i) for i in range(gpus)]
    return state


def _new_gpu(node: str, preset: str, index: int) -> dict[str, object]:
    gpu = {name: _copy(value) for name, value in PRESETS[preset].items()}
    serial = uuid.uuid5(_NAMESPACE, f"{node}/serial/{index}").int % 10**9
    gpu.update(
        uuid=f"GPU-{uuid.uuid5(_NAMESPACE, f'{node}/gpu/{index}')}",
        serial=f"1650{serial:09d}",
        pci_bus_id=f"{index // 8:08X}:{HGX_BUSES[index % 8]}:00.0",
        minor_number=index,
    )
    return {name: gpu[name] for name in FIELDS}


def _copy(value: object) -> object:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value


def _gpus(state: State) -> list[dict[str, object]]:
    gpus = state["gpus"]
    assert isinstance(gpus, list)
    return gpus


def _mapping(value: object) -> dict[object, object]:
    assert isinstance(value, dict)
    return dict(value)


def _gpu_value(name: str, value: object) -> object:
    kind = FIELDS.get(name)
    if kind is None:
        raise ValueError(f"unknown GPU field {name!r}; valid fields: {', '.join(FIELDS)}")
    if value is None and (name in NEVER_NA or kind in (LINKS, *DICT_KINDS)):
        raise ValueError(f"{name} cannot be None (NA)")
    if value == "" and kind == TEXT:
        raise ValueError(f"{name} cannot be empty")
    return _checked(kind, value, name)


def _node_value(key: str, value: object) -> object:
    kind = NODE_SETTINGS.get(key)
    if kind is None:
        raise ValueError(f"unknown node setting {key!r}; valid: {', '.join(NODE_SETTINGS)}")
    if value is None:
        raise ValueError(f"{key} cannot be None")
    return _checked(kind, value, key)


def _checked(kind: str, value: object, name: str) -> object:
    """``value`` as the state holds it, or ValueError."""
    if value is None:
        return None
    if kind == INT and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if kind == BOOL and (isinstance(value, bool) or value in (0, 1)):
        return bool(value)
    if kind == TEXT and isinstance(value, str) and value.strip() == value and "\n" not in value:
        return value  # (identity texts non-empty: checked by _gpu_value)
    if kind == UUID and isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    if kind == LINKS and isinstance(value, list | tuple) and all(_link(v) for v in value):
        return sorted(set(value))
    if kind in DICT_KINDS and isinstance(value, Mapping):
        return {_dict_key(kind, k, name): _dict_value(kind, v, name) for k, v in value.items()}
    raise ValueError(f"{name}: {value!r} is not a valid {kind} value")


def _link(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_LINKS


def _dict_key(kind: str, key: object, name: str) -> object:
    if kind == FAILS:
        if isinstance(key, str) and key.startswith("nvml") and key.isidentifier():
            return key
        raise ValueError(f"{name}: {key!r} is not an NVML function name")
    limit = MAX_LINKS if kind == PER_LINK else 308  # field ids: pynvml's NVML_FI_MAX
    if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < limit:
        return key
    raise ValueError(f"{name}: {key!r} is not a {'link' if kind == PER_LINK else 'field id'}")


def _dict_value(kind: str, value: object, name: str) -> object:
    if value is None:
        return None  # set_gpu removes the key
    limit = 7 if kind == TYPES else 2**64
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < limit:
        return value
    raise ValueError(f"{name}: {value!r} is not a valid value")


def _int(text: str, key: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError(f"{key}: {text!r} is not a number") from None


def _from_text(kind: str, text: str, key: str) -> object:
    """A value as the state file or the command line writes it."""
    if text == "NA" and kind not in (TEXT, LINKS):
        return None
    if kind == INT:
        return _int(text, key)
    if kind == BOOL:
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"{key}: {text!r} is not true or false")
    if kind == LINKS:
        return [_int(part, key) for part in text.split(",") if part.strip()]
    return text


HEX_FIELDS = frozenset(
    {"pci_device_id", "pci_subsystem_id", "clock_event_reasons", "clock_event_reasons_supported"}
)


def _to_text(value: object, hexadecimal: bool = False) -> str:
    if hexadecimal and isinstance(value, int) and not isinstance(value, bool):
        return f"{value:#x}"
    if value is None:
        return "NA"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _render(state: State) -> str:
    lines = [HEADER, f"node {state['node']}", f"preset {state['preset']}"]
    lines += [f"{key} {_to_text(state[key])}".rstrip() for key in NODE_SETTINGS]
    for i, gpu in enumerate(_gpus(state)):
        for name, kind in FIELDS.items():
            if kind in DICT_KINDS:
                for sub, value in _mapping(gpu[name]).items():
                    lines.append(f"gpu {i} {name}.{sub} {value}")
            else:
                text = _to_text(gpu[name], name in HEX_FIELDS)
                lines.append(f"gpu {i} {name} {text}".rstrip())
    return "\n".join(lines) + "\n"


def _write(path: Path, state: State) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(_render(state))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)  # atomic: a reader sees the old file or the new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _blank_gpu() -> dict[str, object]:
    blank: dict[str, object] = {}
    for name, kind in FIELDS.items():
        blank[name] = {} if kind in DICT_KINDS else [] if kind == LINKS else None
    blank.update(name="", uuid="", serial="", pci_bus_id="", present=True, lost=False)
    blank["nvlink_links"] = 0
    return blank


def _read(path: Path) -> State:
    lines = path.read_text().splitlines()
    if not lines or lines[0] != HEADER:
        raise ValueError(f"{path}:1: not an NVML double state file")
    state: State = {"node": "", "preset": ""}
    gpus: dict[int, dict[str, object]] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            _read_line(line, state, gpus)
        except (ValueError, KeyError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
    if sorted(gpus) != list(range(len(gpus))):
        raise ValueError(f"{path}: GPUs are not numbered 0..{len(gpus) - 1}")
    state["gpus"] = [gpus[i] for i in range(len(gpus))]
    return state


def _read_line(line: str, state: State, gpus: dict[int, dict[str, object]]) -> None:
    key, _, rest = line.partition(" ")
    if key in ("node", "preset"):
        state[key] = rest.strip()
        return
    if key != "gpu":
        state[key] = _from_text(NODE_SETTINGS[key], rest.strip(), key)
        return
    index, _, rest = rest.partition(" ")
    field, _, text = rest.strip().partition(" ")
    gpu = gpus.setdefault(_int(index, "gpu"), _blank_gpu())
    name, dot, sub = field.partition(".")
    kind = FIELDS[name]
    if bool(dot) != (kind in DICT_KINDS):
        raise ValueError(f"{field!r} is not a GPU field")
    if kind in DICT_KINDS:
        entries = _mapping(gpu[name])
        entries[sub if kind == FAILS else _int(sub, field)] = _int(text.strip(), field)
        gpu[name] = entries
    else:
        gpu[name] = _from_text(kind, text.strip(), field)


# ---------- command line ----------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gpu_double", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="write a fresh state file for a node")
    create.add_argument("state", type=Path)
    create.add_argument("--node", required=True)
    create.add_argument("--preset", default="h100-sxm", choices=sorted(PRESETS))
    create.add_argument("--gpus", type=int, default=8)
    change = sub.add_parser("set", help="change a GPU (--gpu I) or the node: key=value ...")
    change.add_argument("state", type=Path)
    change.add_argument("--gpu", type=int, help="the GPU's number; without it, node settings")
    change.add_argument("assignments", nargs="+", metavar="key=value")
    sub.add_parser("reset", help="every GPU healthy again").add_argument("state", type=Path)
    sub.add_parser("show", help="the state as JSON").add_argument("state", type=Path)
    environ = sub.add_parser("env", help="shell exports that make pynvml use the double")
    environ.add_argument("state", type=Path)
    environ.add_argument("--driver", default="latest", choices=DRIVERS)
    sub.add_parser("build", help="build the C library if it is out of date")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "create":
            write_node(args.state, args.node, preset=args.preset, gpus=args.gpus)
        elif args.command == "set" and args.gpu is None:
            set_node(args.state, **parse_assignments(args.assignments, node=True))
        elif args.command == "set":
            set_gpu(args.state, args.gpu, **parse_assignments(args.assignments))
        elif args.command == "reset":
            reset(args.state)
        elif args.command == "show":
            print(json.dumps(read(args.state), indent=2, default=str))
        elif args.command == "env":
            for key, value in env(args.state, args.driver).items():
                print(f"export {key}={value}")
        else:
            build()
    except (ValueError, OSError, GpuDoubleError) as exc:
        print(f"gpu_double: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
