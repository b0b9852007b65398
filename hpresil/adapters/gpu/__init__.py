"""GPU adapters: real NVML (:mod:`.nvml`) and a simulation for labs without GPUs
(:mod:`.simulated`), chosen by ``agent.gpu.backend``."""

from __future__ import annotations

from hpresil.adapters.gpu.base import GpuBackend, GpuSample, normalize_bus_id
from hpresil.config import GpuConfig

__all__ = ["GpuBackend", "GpuSample", "normalize_bus_id", "open_backend"]


def open_backend(cfg: GpuConfig, node: str) -> GpuBackend:
    """The configured backend. Raises GpuError when NVML cannot start."""
    if cfg.backend == "simulated":
        from hpresil.adapters.gpu.simulated import SimulatedBackend

        return SimulatedBackend(cfg.state_file, node)
    from hpresil.adapters.gpu.nvml import NvmlBackend

    return NvmlBackend()
