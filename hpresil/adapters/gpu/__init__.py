"""GPU adapters: real NVML (:mod:`.nvml`), ``nvidia-smi -q -x`` (:mod:`.smi`) and a
simulation for labs without GPUs (:mod:`.simulated`), chosen by ``agent.gpu.backend``.
:mod:`.history` keeps recent samples for checks that judge rates."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpresil.adapters.gpu.base import GpuBackend, GpuSample, normalize_bus_id

if TYPE_CHECKING:  # the config imports check modules that import this package
    from hpresil.config import GpuConfig

__all__ = ["GpuBackend", "GpuSample", "normalize_bus_id", "open_backend"]


def open_backend(cfg: GpuConfig, node: str) -> GpuBackend:
    """The configured backend. Raises GpuError when NVML cannot start."""
    backend: str = cfg.backend
    if backend == "simulated":
        from hpresil.adapters.gpu.simulated import SimulatedBackend

        return SimulatedBackend(cfg.state_file, node)
    if backend == "nvidia_smi":
        from hpresil.adapters.gpu.smi import NvidiaSmiBackend

        return NvidiaSmiBackend()
    from hpresil.adapters.gpu.nvml import NvmlBackend

    return NvmlBackend()
