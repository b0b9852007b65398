"""The configured GPU backend, (re)opened on demand: the agent starts before the GPU
driver may have loaded, and must not give up on the GPUs for it."""

from __future__ import annotations

from hpresil.adapters.gpu import open_backend
from hpresil.adapters.gpu.base import GpuBackend
from hpresil.config import GpuConfig
from hpresil.vocab.gpu import GpuSample


class ReopeningBackend:
    """The configured GPU backend, opened on first use and again after it failed to
    open (the driver may load after the agent starts)."""

    def __init__(self, cfg: GpuConfig) -> None:
        self._cfg = cfg
        self._backend: GpuBackend | None = None

    def devices(self) -> list[GpuSample]:
        if self._backend is None:
            self._backend = open_backend(self._cfg)  # GpuError if it cannot
        return self._backend.devices()

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
