"""The typed parts of a :class:`~hpresil.adapters.gpu.base.GpuSample`.

Each record is None in a sample when the GPU or driver does not offer it (NVML's
NotSupported, nvidia-smi's ``N/A``): unsupported, never unhealthy. Reference:
/work/shared/reference/gpu-health.md section 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag, StrEnum


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
