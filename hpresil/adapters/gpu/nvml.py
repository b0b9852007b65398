"""The real GPU backend: NVML through ``pynvml`` (package nvidia-ml-py).

Reference: /work/shared/reference/gpu-health.md section 3. ``NVMLError_NotSupported``
is "unsupported" (None), never unhealthy; ``NVMLError_GpuIsLost`` marks the GPU lost
(fallen off the bus); any other NVML error becomes the sample's ``error`` text. The
records are read with feature detection by :mod:`.nvml_read`. ``pynvml`` is imported
only when this backend is opened.
"""

from __future__ import annotations

import logging
from typing import Any

from hpresil.adapters.gpu import nvml_read as rd
from hpresil.errors import GpuError
from hpresil.vocab import GpuIdentity
from hpresil.vocab.gpu import GpuSample, board_serial, normalize_bus_id

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
        return [read_sample(nv, index) for index in range(count)]

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._nv.nvmlShutdown()
            except self._nv.NVMLError as exc:
                log.debug("nvmlShutdown: %s", exc)


def read_sample(nv: Any, index: int) -> GpuSample:
    """GPU ``index`` as seen through the pynvml module ``nv``."""
    reader = rd.Reader(nv)
    handle = reader.read(nv.nvmlDeviceGetHandleByIndex, index)
    if handle is None:
        return GpuSample(GpuIdentity(index=index), lost=reader.lost, error=reader.error)
    identity = _identity(reader, handle, index)
    ecc = rd.read_ecc(reader, handle)
    fields: dict[str, Any] = {
        "temperature_c": _int(
            reader.read(nv.nvmlDeviceGetTemperature, handle, nv.NVML_TEMPERATURE_GPU)
        ),
        "utilization_pct": rd.read_utilization(reader, handle),
        "ecc": ecc,
        "row_remap": rd.read_row_remap(reader, handle),
        "retired_pages": rd.read_retired_pages(reader, handle),
        "thermal": rd.read_thermal(reader, handle),
        "clock_events": rd.read_clock_events(reader, handle),
        "power": rd.read_power(reader, handle),
        "pcie": rd.read_pcie(reader, handle),
        "nvlink": rd.read_nvlink(reader, handle),
        "fabric": rd.read_fabric(reader, handle),
        "recovery_action": rd.read_recovery_action(reader, handle),
    }
    if reader.lost:  # like a lost GPU everywhere: it answers nothing
        return GpuSample(identity=identity, lost=True, error=reader.error)
    return GpuSample(identity=identity, error=reader.error, **fields)


def _identity(reader: rd.Reader, handle: Any, index: int) -> GpuIdentity:
    nv = reader.nv
    pci = reader.read(nv.nvmlDeviceGetPciInfo, handle)
    return GpuIdentity(
        index=index,
        uuid=_text(reader.read(nv.nvmlDeviceGetUUID, handle)),
        serial=board_serial(_text(reader.read(nv.nvmlDeviceGetSerial, handle))),
        pci_bus_id=normalize_bus_id(_text(pci.busId) or "") if pci is not None else None,
        name=_text(reader.read(nv.nvmlDeviceGetName, handle)),
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
