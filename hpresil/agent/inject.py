"""Fault injection for game days: an XID line into the kernel log, or a GPU state
change in the simulation backend. Both travel the same path as a real fault."""

from __future__ import annotations

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
) -> GpuSample:
    """Change a simulated GPU: ``lost`` (fallen off the bus), volatile uncorrected
    ECC count, ``present`` (False: it no longer enumerates). Answers its new sample."""
    _require_simulated(cfg)
    fields = {
        k: v
        for k, v in {
            "lost": lost,
            "ecc_uncorrected_volatile": ecc_uncorrected,
            "present": present,
        }.items()
        if v is not None
    }
    if not fields:
        raise UsageError("nothing to inject: give lost, ecc_uncorrected or present")
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
