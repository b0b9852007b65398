"""Fault injection for game days: an XID line into the kernel log, or a GPU state
change in the simulation backend. Both travel the same path as a real fault."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hpresil.adapters.gpu import GpuSample, open_backend
from hpresil.adapters.gpu.simulated import reset_state, set_gpu_state
from hpresil.config import Config
from hpresil.errors import HpresilError, UsageError
from hpresil.kernlog.inject import write_line, xid_line


def inject_xid(
    cfg: Config,
    node: str,
    xid: int,
    gpu_index: int,
    pid: int | None = None,
    process: str | None = None,
    message: str | None = None,
) -> str:
    """Write an XID line for GPU ``gpu_index`` (its PCI id from the configured GPU
    backend) where the agent reads the kernel log; answers the line."""
    backend = open_backend(cfg.agent.gpu, node)
    try:
        gpus = backend.devices()
    finally:
        backend.close()
    gpu = next((g for g in gpus if g.identity.index == gpu_index), None)
    if gpu is None:
        found = ", ".join(str(g.identity.index) for g in gpus) or "none"
        raise UsageError(f"node {node} has no GPU {gpu_index} (found: {found})")
    if gpu.identity.pci_bus_id is None:
        raise HpresilError(f"GPU {gpu_index} on {node}: PCI bus id unknown ({gpu.error})")
    line = xid_line(xid, gpu.identity.pci_bus_id, pid=pid, process=process, message=message)
    write_line(cfg.agent.kernel_log, node, line)
    return line


def inject_gpu(
    cfg: Config,
    node: str,
    gpu_index: int,
    *,
    lost: bool | None = None,
    ecc_uncorrected: int | None = None,
    present: bool | None = None,
    ecc_corrected: int | None = None,
    ecc_corrected_aggregate: int | None = None,
    ecc_sram_corrected_aggregate: int | None = None,
    row_remap_pending: bool | None = None,
    row_remap_failure: bool | None = None,
    row_remap_uncorrectable: int | None = None,
    temperature_c: int | None = None,
    memory_temperature_c: int | None = None,
    clock_event_reasons: int | None = None,
    power_w: float | None = None,
    utilization_pct: int | None = None,
    pcie_gen: int | None = None,
    pcie_width: int | None = None,
    pcie_replays: int | None = None,
    nvlink_down: Sequence[int] | None = None,
    nvlink_link: int = 0,
    nvlink_replay: int | None = None,
    nvlink_recovery: int | None = None,
    nvlink_crc_flit: int | None = None,
    nvlink_crc_data: int | None = None,
    fabric_state: str | None = None,
    fabric_status: str | None = None,
    recovery_action: int | None = None,
) -> GpuSample:
    """Change a simulated GPU and answer its new sample.

    ``lost`` (fallen off the bus), ``present`` (False: it no longer enumerates),
    volatile ECC counts (``ecc_uncorrected``, ``ecc_corrected``) and aggregate
    corrected ones (DRAM, SRAM), row remapping, temperatures (degrees C), the clock
    event reason bitmask (0x8 HW slowdown, 0x40 HW thermal, 0x80 power brake), power
    draw (W), utilisation (%), the PCIe link and its replay counter, the NVLinks that
    are down (``[]``: all up), error counters of NVLink ``nvlink_link``, the fabric
    state (not_supported, not_started, in_progress, completed) and status, and the
    driver's recovery action (0-7). Counters are cumulative: set a higher value to
    make them grow between two samples.
    """
    _require_simulated(cfg)
    per_link = {
        "nvlink_replay": nvlink_replay,
        "nvlink_recovery": nvlink_recovery,
        "nvlink_crc_flit": nvlink_crc_flit,
        "nvlink_crc_data": nvlink_crc_data,
    }
    changes: dict[str, Any] = {
        "lost": lost,
        "ecc_uncorrected_volatile": ecc_uncorrected,
        "present": present,
        "ecc_corrected_volatile": ecc_corrected,
        "ecc_corrected_aggregate": ecc_corrected_aggregate,
        "ecc_sram_corrected_aggregate": ecc_sram_corrected_aggregate,
        "row_remap_pending": row_remap_pending,
        "row_remap_failure": row_remap_failure,
        "row_remap_uncorrectable": row_remap_uncorrectable,
        "temperature_c": temperature_c,
        "memory_temperature_c": memory_temperature_c,
        "clock_event_reasons": clock_event_reasons,
        "power_w": power_w,
        "utilization_pct": utilization_pct,
        "pcie_gen": pcie_gen,
        "pcie_width": pcie_width,
        "pcie_replays": pcie_replays,
        "nvlink_down": None if nvlink_down is None else sorted(set(nvlink_down)),
        "fabric_state": fabric_state,
        "fabric_status": fabric_status,
        "recovery_action": recovery_action,
        **{k: None if v is None else {nvlink_link: v} for k, v in per_link.items()},
    }
    fields = {k: v for k, v in changes.items() if v is not None}
    if not fields:
        raise UsageError("nothing to inject: give at least one GPU state to change")
    return set_gpu_state(cfg.agent.gpu.state_file, node, gpu_index, **fields)


def reset_gpus(cfg: Config, node: str) -> None:
    """Undo every GPU-state injection on ``node`` (eight healthy simulated GPUs)."""
    _require_simulated(cfg)
    reset_state(cfg.agent.gpu.state_file, node)


def _require_simulated(cfg: Config) -> None:
    if cfg.agent.gpu.backend != "simulated":
        raise HpresilError(
            "injecting GPU state needs the simulated GPU backend "
            f"(agent.gpu.backend is {cfg.agent.gpu.backend!r}); on real GPUs inject an XID"
        )
