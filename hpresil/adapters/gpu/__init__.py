"""GPU adapters: real NVML (:mod:`.nvml`) or ``nvidia-smi -q -x`` (:mod:`.smi`), chosen
by ``agent.gpu.backend``; :mod:`.reopen` opens it on first use, and again while it
fails to open. :mod:`.history` keeps recent samples for checks that judge rates.
Where there is no GPU (the lab, the tests), the agent still takes the NVML path:
pynvml loads a C double of ``libnvidia-ml.so.1`` (scripts/nvml-double) in its place."""

from __future__ import annotations

from hpresil.adapters.gpu.base import GpuBackend
from hpresil.config import GpuConfig

__all__ = ["GpuBackend", "open_backend"]


def open_backend(cfg: GpuConfig) -> GpuBackend:
    """The configured backend. Raises GpuError when NVML cannot start."""
    if cfg.backend == "nvidia_smi":
        from hpresil.adapters.gpu.smi import NvidiaSmiBackend

        return NvidiaSmiBackend()
    from hpresil.adapters.gpu.nvml import NvmlBackend

    return NvmlBackend()
