"""The real GPU backend: NVML through ``pynvml`` (package nvidia-ml-py).

Reference: /work/shared/reference/gpu-health.md section 3. ``NVMLError_NotSupported``
is "unsupported" (None), never unhealthy; ``NVMLError_GpuIsLost`` marks the GPU lost
(fallen off the bus); any other NVML error becomes the sample's ``error`` text.
``pynvml`` is imported only when this backend is opened.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hpresil.adapters.gpu.base import GpuSample, normalize_bus_id
from hpresil.errors import GpuError
from hpresil.vocab import GpuIdentity

log = logging.getLogger(__name__)


class NvmlBackend:
    """NVML, initialised once per backend; ``close`` shuts it down."""

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise GpuError(f"NVML unavailable: cannot import pynvml ({exc})") from None
        self._nv: Any = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise GpuError(f"NVML could not start: {exc}") from None
        self._open = True

    def devices(self) -> list[GpuSample]:
        nv = self._nv
        try:
            count = int(nv.nvmlDeviceGetCount())
        except nv.NVMLError as exc:
            raise GpuError(f"NVML could not count GPUs: {exc}") from None
        return [self._sample(index) for index in range(count)]

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._nv.nvmlShutdown()
            except self._nv.NVMLError as exc:
                log.debug("nvmlShutdown: %s", exc)

    def _sample(self, index: int) -> GpuSample:
        reader = _Reader(self._nv)
        handle = reader.read(self._nv.nvmlDeviceGetHandleByIndex, index)
        if handle is None:
            return GpuSample(GpuIdentity(index=index), lost=reader.lost, error=reader.error)
        nv = self._nv
        pci = reader.read(nv.nvmlDeviceGetPciInfo, handle)
        identity = GpuIdentity(
            index=index,
            uuid=_text(reader.read(nv.nvmlDeviceGetUUID, handle)),
            serial=_text(reader.read(nv.nvmlDeviceGetSerial, handle)),
            pci_bus_id=normalize_bus_id(_text(pci.busId) or "") if pci is not None else None,
            name=_text(reader.read(nv.nvmlDeviceGetName, handle)),
        )
        ecc = nv.nvmlDeviceGetTotalEccErrors
        volatile = nv.NVML_VOLATILE_ECC
        uncorrected = reader.read(ecc, handle, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, volatile)
        corrected = reader.read(ecc, handle, nv.NVML_MEMORY_ERROR_TYPE_CORRECTED, volatile)
        temperature = reader.read(nv.nvmlDeviceGetTemperature, handle, nv.NVML_TEMPERATURE_GPU)
        return GpuSample(
            identity=identity,
            lost=reader.lost,
            ecc_uncorrected_volatile=_int(uncorrected),
            ecc_corrected_volatile=_int(corrected),
            temperature_c=_int(temperature),
            error=reader.error,
        )


class _Reader:
    """Calls NVML functions for one GPU and sorts their errors."""

    def __init__(self, nv: Any) -> None:
        self._nv = nv
        self.lost = False
        self._errors: list[str] = []

    @property
    def error(self) -> str | None:
        return "; ".join(self._errors) if self._errors else None

    def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.lost:
            return None
        nv = self._nv
        try:
            return fn(*args)
        except nv.NVMLError_NotSupported:
            return None
        except nv.NVMLError_GpuIsLost:
            self.lost = True
            return None
        except nv.NVMLError as exc:
            self._errors.append(f"{getattr(fn, '__name__', 'nvml')}: {exc}")
            return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
