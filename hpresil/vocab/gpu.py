"""What a GPU backend answers about one GPU: a :class:`GpuSample` and its typed parts.

Each record is None in a sample when the GPU or driver does not offer it (NVML's
NotSupported, nvidia-smi's ``N/A``): unsupported, never unhealthy. Reference:
/work/shared/reference/gpu-health.md section 3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum, IntFlag, StrEnum

from hpresil.vocab import GpuIdentity


class ClockReason(IntFlag):
    """NVML's clock event (throttle) reason bits."""

    GPU_IDLE = 0x1
    APPLICATIONS_CLOCKS = 0x2
    SW_POWER_CAP = 0x4
    HW_SLOWDOWN = 0x8
    SYNC_BOOST = 0x10
    SW_THERMAL = 0x20
    HW_THERMAL = 0x40
    HW_POWER_BRAKE = 0x80
    DISPLAY_CLOCKS = 0x100


def reason_names(mask: int) -> list[str]:
    """The names of the bits set in ``mask``, lower case."""
    return [r.name.lower() for r in ClockReason if r.name and mask & r.value]


@dataclass(frozen=True, slots=True)
class EccCounts:
    """ECC error counts of one kind (volatile: since the last reset; aggregate: life)."""

    corrected: int | None = None
    uncorrected: int | None = None
    dram_corrected: int | None = None
    dram_uncorrected: int | None = None
    sram_corrected: int | None = None
    sram_uncorrected: int | None = None


@dataclass(frozen=True, slots=True)
class EccInfo:
    enabled: bool | None = None  # current ECC mode
    pending_enabled: bool | None = None  # mode after the next reset
    volatile: EccCounts | None = None
    aggregate: EccCounts | None = None
    sram_threshold_exceeded: bool | None = None  # the driver's own SRAM error threshold


@dataclass(frozen=True, slots=True)
class RowRemap:
    """Row remapping (A100 and later): rows remapped for correctable and uncorrectable
    errors, a remap waiting for a GPU reset, a remap that could not be done."""

    correctable: int
    uncorrectable: int
    pending: bool
    failure: bool


@dataclass(frozen=True, slots=True)
class RetiredPages:
    """Dynamic page retirement (before Ampere)."""

    single_bit: int
    double_bit: int
    pending: bool

    @property
    def total(self) -> int:
        return self.single_bit + self.double_bit


@dataclass(frozen=True, slots=True)
class Thermal:
    """Temperatures beyond the GPU's own (``GpuSample.temperature_c``): memory, and
    the device's own thresholds in degrees C."""

    memory_c: int | None = None
    shutdown_c: int | None = None
    slowdown_c: int | None = None
    gpu_max_c: int | None = None  # maximum operating temperature
    mem_max_c: int | None = None


@dataclass(frozen=True, slots=True)
class ClockCounters:
    """Cumulative time spent clock-limited, in microseconds, where the driver counts it."""

    sw_power_cap_us: int | None = None
    sync_boost_us: int | None = None
    sw_thermal_us: int | None = None
    hw_thermal_us: int | None = None
    hw_power_brake_us: int | None = None


@dataclass(frozen=True, slots=True)
class ClockEvents:
    reasons: int  # bits of ClockReason active now
    supported: int | None = None  # bits the GPU can report
    counters: ClockCounters | None = None


@dataclass(frozen=True, slots=True)
class Power:
    draw_w: float | None = None
    limit_w: float | None = None  # the enforced limit


@dataclass(frozen=True, slots=True)
class Pcie:
    gen: int | None = None
    max_gen: int | None = None  # what GPU and host can reach together
    width: int | None = None
    max_width: int | None = None
    replays: int | None = None  # replay counter, cumulative since the last reset


@dataclass(frozen=True, slots=True)
class NvLink:
    """One NVLink: its state and cumulative data-link error counters."""

    link: int
    active: bool
    replay: int | None = None
    recovery: int | None = None
    crc_flit: int | None = None
    crc_data: int | None = None


class FabricState(StrEnum):
    """NVML's GPU fabric state (NVSwitch systems: set by the fabric manager)."""

    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class Fabric:
    state: FabricState
    status: str | None = None  # "success", or the error the fabric manager reported
    clique_id: int | None = None
    cluster_uuid: str | None = None

    @property
    def healthy(self) -> bool:
        return self.state is FabricState.COMPLETED and self.status in (None, "success")


class RecoveryAction(IntEnum):
    """What the driver asks for (NVML field 230, XID 154), by NVML's code."""

    NONE = 0
    GPU_RESET = 1
    NODE_REBOOT = 2
    DRAIN_P2P = 3
    DRAIN_AND_RESET = 4
    RECOVER_IMEX_DOMAIN = 5
    BUS_RESET = 6
    SYSTEM_REBOOT = 7


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
    The records are described above, in this module.
    """

    identity: GpuIdentity
    lost: bool = False  # NVML answered GpuIsLost: fallen off the bus
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
    recovery_action: int | None = None  # NVML field 230: see RecoveryAction

    @property
    def where(self) -> str:
        """``GPU 3 (0000:5d:00)``, for summaries."""
        return f"GPU {self.identity.index} ({self.identity.pci_bus_id})"
