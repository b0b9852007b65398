"""What every GPU backend answers: one frozen sample per GPU.

A backend is a narrow adapter (STYLE.md pattern 5): ``devices()`` queries the
hardware (or the NVML double standing in for it) and returns plain data; judging it
is the checks' job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from hpresil.adapters.gpu.records import (
    ClockEvents,
    EccInfo,
    Fabric,
    NvLink,
    Pcie,
    Power,
    RetiredPages,
    RowRemap,
    Thermal,
)
from hpresil.vocab import GpuIdentity

_BDF = re.compile(
    r"^(?:(?P<domain>[0-9a-fA-F]{1,8}):)?(?P<bus>[0-9a-fA-F]{1,2}):(?P<dev>[0-9a-fA-F]{1,2})"
    r"(?:\.[0-7])?$"
)


def board_serial(text: str | None) -> str | None:
    """A GPU's board serial, or None: all zeros is the placeholder cloud VMs answer
    (AWS A10G, T4), shared by every GPU of that kind; kept, it would merge their
    incident histories."""
    if text is None:
        return None
    value = text.strip()
    return None if not value or set(value) == {"0"} else value


def normalize_bus_id(text: str) -> str | None:
    """A PCI address in the kernel's XID form, lower case ``dddd:bb:dd``.

    Accepts NVML's ``00000000:17:00.0``, the kernel's ``0000:17:00`` and a bare
    ``17:00.0``; answers None for anything else.
    """
    m = _BDF.match(text.strip())
    if m is None:
        return None
    domain = int(m.group("domain") or "0", 16)
    if domain > 0xFFFF:
        return None
    return f"{domain:04x}:{int(m.group('bus'), 16):02x}:{int(m.group('dev'), 16):02x}"


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One GPU as seen at one moment.

    ``None`` in a counter or record means the GPU or driver does not offer it
    (unsupported, never unhealthy) or, when ``error`` is set, that reading it failed.
    The records are described in :mod:`hpresil.adapters.gpu.records`.
    """

    identity: GpuIdentity
    lost: bool = False  # NVML answered GpuIsLost: fallen off the bus
    ecc_uncorrected_volatile: int | None = None
    ecc_corrected_volatile: int | None = None
    temperature_c: int | None = None
    error: str | None = None  # what went wrong reading this GPU, one line
    utilization_pct: int | None = None  # GPU (SM) utilisation, percent
    ecc: EccInfo | None = None
    row_remap: RowRemap | None = None
    retired_pages: RetiredPages | None = None
    thermal: Thermal | None = None
    clock_events: ClockEvents | None = None
    power: Power | None = None
    pcie: Pcie | None = None
    nvlink: tuple[NvLink, ...] | None = None  # None: no NVLink (or not reported)
    fabric: Fabric | None = None  # None: not an NVSwitch/fabric-managed GPU
    recovery_action: int | None = None  # NVML field 230: see records.RecoveryAction

    @property
    def where(self) -> str:
        """``GPU 3 (0000:5d:00)``, for summaries."""
        return f"GPU {self.identity.index} ({self.identity.pci_bus_id})"


class GpuBackend(Protocol):
    """The GPU adapter. ``devices`` raises :class:`~hpresil.errors.GpuError` when it
    cannot answer at all (driver missing, state unreadable)."""

    def devices(self) -> list[GpuSample]: ...

    def close(self) -> None: ...
