"""Fault injection for game days: an XID line, in the driver's own format, written
into the node's kernel log, so the fault travels the whole path a real one takes."""

from __future__ import annotations

from hpresil.adapters.gpu import open_backend
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
    backend = open_backend(cfg.agent.gpu)
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
