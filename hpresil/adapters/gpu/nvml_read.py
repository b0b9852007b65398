"""Reading one GPU's records through ``pynvml`` with feature detection.

Every reader takes a :class:`Reader` (the pynvml module plus error sorting) and a
device handle and answers a record or None. A function the binding lacks, or one the
driver answers with NotSupported or FunctionNotFound, gives None (unsupported);
GpuIsLost marks the GPU lost; any other NVML error is kept as the sample's error.
Reference: /work/shared/reference/gpu-health.md section 3 and nvml-abi.md. Call
sequences are taken from nvidia-ml-py 13.x. pynvml hands the structs of versioned
calls (fabric, SRAM ECC) straight to C, and nvml.h takes pointers: they are always
passed with ``ctypes.byref``. The tests run this module through pynvml into an NVML
double at the C boundary (scripts/nvml-double); ``pytest -m gpu`` on a real GPU.
"""

from __future__ import annotations

import ctypes
import uuid
from collections.abc import Callable
from typing import Any

from hpresil.vocab.gpu import (
    ClockCounters,
    ClockEvents,
    EccCounts,
    EccInfo,
    Fabric,
    FabricState,
    NvLink,
    Pcie,
    Power,
    RetiredPages,
    RowRemap,
    Thermal,
)

FI_MEMORY_TEMP = 82
FI_RECOVERY_ACTION = 230
FI_HW_THERMAL, FI_HW_POWER_BRAKE, FI_SW_THERMAL = 270, 271, 269
FI_PERF_POLICY_POWER, FI_PERF_POLICY_SYNC_BOOST = 74, 76
_FABRIC_STATES = {1: FabricState.NOT_STARTED, 2: FabricState.IN_PROGRESS, 3: FabricState.COMPLETED}


class Reader:
    """Calls NVML functions for one GPU and sorts their errors."""

    def __init__(self, nv: Any) -> None:
        self.nv = nv
        self.lost = False
        self._errors: list[str] = []

    @property
    def error(self) -> str | None:
        return "; ".join(self._errors) if self._errors else None

    def read(
        self, fn: Callable[..., Any] | str, *args: Any, unavailable: tuple[str, ...] = ()
    ) -> Any:
        """``fn(*args)``; ``fn`` may name a pynvml function the binding may lack. The
        pynvml errors named in ``unavailable`` count as unsupported for this call."""
        value, error = self.attempt(fn, *args, unavailable=unavailable)
        if error is not None:
            self._errors.append(error)
        return value

    def first(self, *calls: tuple[Callable[..., Any] | str, tuple[Any, ...]]) -> int | None:
        """The position of the first of several ways to ask (newest first) that
        answers, or None. An error is kept only when none answers: a driver that
        refuses a newer struct version and answers the older call is healthy."""
        errors = []
        for position, (fn, args) in enumerate(calls):
            value, error = self.attempt(fn, *args)
            if value is not None:
                return position
            if self.lost:
                return None
            if error is not None:
                errors.append(error)
        if errors:
            self._errors.append(errors[-1])
        return None

    def attempt(
        self, fn: Callable[..., Any] | str, *args: Any, unavailable: tuple[str, ...] = ()
    ) -> tuple[Any, str | None]:
        """``(value, None)``, ``(None, None)`` when unsupported or lost, or
        ``(None, error text)``."""
        if self.lost:
            return None, None
        nv = self.nv
        func = getattr(nv, fn, None) if isinstance(fn, str) else fn
        if func is None:
            return None, None
        try:
            return func(*args), None
        except _unsupported(nv, unavailable):
            return None, None
        except nv.NVMLError_GpuIsLost:
            self.lost = True
            return None, None
        except nv.NVMLError as exc:
            return None, f"{getattr(func, '__name__', 'nvml')}: {exc}"

    def fields(self, handle: Any, ids: list[int]) -> dict[int, int | float]:
        """The field values that the driver answered, by field id."""
        values = self.read("nvmlDeviceGetFieldValues", handle, ids)
        out: dict[int, int | float] = {}
        for fv in values or ():
            if int(fv.nvmlReturn) == 0:
                out[int(fv.fieldId)] = _field_value(fv)
        return out


def _unsupported(nv: Any, also: tuple[str, ...] = ()) -> tuple[type[BaseException], ...]:
    names = ("NVMLError_NotSupported", "NVMLError_FunctionNotFound", *also)
    return tuple(getattr(nv, n) for n in names if hasattr(nv, n))


# nvmlValueType_t -> the member of nvmlValue_t that holds the value (nvml.h)
_VALUE_MEMBERS = {
    0: "dVal",
    1: "uiVal",
    2: "ulVal",
    3: "ullVal",
    4: "sllVal",
    5: "siVal",
    6: "usVal",
}


def _field_value(fv: Any) -> int | float:
    kind = int(fv.valueType)
    value = getattr(fv.value, _VALUE_MEMBERS.get(kind, "ullVal"))
    return float(value) if kind == 0 else int(value)


def read_ecc(r: Reader, h: Any) -> EccInfo | None:
    nv = r.nv
    mode = r.read("nvmlDeviceGetEccMode", h)
    volatile = _ecc_counts(r, h, nv.NVML_VOLATILE_ECC)
    aggregate = _ecc_counts(r, h, nv.NVML_AGGREGATE_ECC)
    sram = read_sram_status(r, h)
    if mode is None and volatile is None and aggregate is None and sram is None:
        return None
    return EccInfo(
        enabled=None if mode is None else bool(mode[0]),
        pending_enabled=None if mode is None else bool(mode[1]),
        volatile=volatile,
        aggregate=aggregate,
        sram_threshold_exceeded=None if sram is None else bool(sram.bThresholdExceeded),
    )


def read_sram_status(r: Reader, h: Any) -> Any:
    """nvmlDeviceGetSramEccErrorStatus (NVML 12.4, driver 550 and later; the driver
    may ask for root): the SRAM counters and whether the driver's own SRAM error
    threshold was exceeded. None where the driver or the binding lacks it."""
    struct = getattr(r.nv, "c_nvmlEccSramErrorStatus_v1_t", None)
    if struct is None:
        return None
    status = struct()
    # denied to a user that is not root (hpresil check): unavailable, not an error
    answered = r.read(
        "nvmlDeviceGetSramEccErrorStatus",
        h,
        ctypes.byref(status),
        unavailable=("NVMLError_NoPermission",),
    )
    return None if answered is None else status


def _ecc_counts(r: Reader, h: Any, counter: int) -> EccCounts | None:
    nv = r.nv
    corr, unc = nv.NVML_MEMORY_ERROR_TYPE_CORRECTED, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
    dram, sram = nv.NVML_MEMORY_LOCATION_DRAM, nv.NVML_MEMORY_LOCATION_SRAM

    def located(kind: int, where: int) -> int | None:
        return _int(r.read("nvmlDeviceGetMemoryErrorCounter", h, kind, counter, where))

    counts = EccCounts(
        corrected=_int(r.read("nvmlDeviceGetTotalEccErrors", h, corr, counter)),
        uncorrected=_int(r.read("nvmlDeviceGetTotalEccErrors", h, unc, counter)),
        dram_corrected=located(corr, dram),
        dram_uncorrected=located(unc, dram),
        sram_corrected=located(corr, sram),
        sram_uncorrected=located(unc, sram),
    )
    return None if counts == EccCounts() else counts


def read_row_remap(r: Reader, h: Any) -> RowRemap | None:
    rows = r.read("nvmlDeviceGetRemappedRows", h)
    if rows is None:
        return None
    corr, unc, pending, failure = rows
    return RowRemap(int(corr), int(unc), bool(pending), bool(failure))


def read_retired_pages(r: Reader, h: Any) -> RetiredPages | None:
    nv = r.nv
    sbe = r.read(
        "nvmlDeviceGetRetiredPages", h, nv.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS
    )
    dbe = r.read("nvmlDeviceGetRetiredPages", h, nv.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)
    pending = r.read("nvmlDeviceGetRetiredPagesPendingStatus", h)
    if sbe is None or dbe is None or pending is None:
        return None
    return RetiredPages(single_bit=len(sbe), double_bit=len(dbe), pending=bool(pending))


def read_thermal(r: Reader, h: Any) -> Thermal | None:
    nv = r.nv

    def threshold(name: str) -> int | None:
        return _int(r.read("nvmlDeviceGetTemperatureThreshold", h, getattr(nv, name)))

    memory = r.fields(h, [FI_MEMORY_TEMP]).get(FI_MEMORY_TEMP)
    thermal = Thermal(
        memory_c=None if memory is None else int(memory),
        shutdown_c=threshold("NVML_TEMPERATURE_THRESHOLD_SHUTDOWN"),
        slowdown_c=threshold("NVML_TEMPERATURE_THRESHOLD_SLOWDOWN"),
        gpu_max_c=threshold("NVML_TEMPERATURE_THRESHOLD_GPU_MAX"),
        mem_max_c=threshold("NVML_TEMPERATURE_THRESHOLD_MEM_MAX"),
    )
    return None if thermal == Thermal() else thermal


def read_clock_events(r: Reader, h: Any) -> ClockEvents | None:
    reasons = r.read("nvmlDeviceGetCurrentClocksEventReasons", h)
    if reasons is None:  # drivers before 535 only know the older name
        reasons = r.read("nvmlDeviceGetCurrentClocksThrottleReasons", h)
    if reasons is None:
        return None
    supported = r.read("nvmlDeviceGetSupportedClocksEventReasons", h)
    return ClockEvents(reasons=int(reasons), supported=_int(supported), counters=_counters(r, h))


def _counters(r: Reader, h: Any) -> ClockCounters | None:
    """Cumulative clock-event time; NVML counts nanoseconds (verify on a GPU)."""
    ids = [FI_PERF_POLICY_POWER, FI_PERF_POLICY_SYNC_BOOST, FI_SW_THERMAL, FI_HW_THERMAL]
    got = r.fields(h, [*ids, FI_HW_POWER_BRAKE])

    def us(field: int) -> int | None:
        value = got.get(field)
        return None if value is None else int(value) // 1000

    counters = ClockCounters(
        sw_power_cap_us=us(FI_PERF_POLICY_POWER),
        sync_boost_us=us(FI_PERF_POLICY_SYNC_BOOST),
        sw_thermal_us=us(FI_SW_THERMAL),
        hw_thermal_us=us(FI_HW_THERMAL),
        hw_power_brake_us=us(FI_HW_POWER_BRAKE),
    )
    return None if counters == ClockCounters() else counters


def read_power(r: Reader, h: Any) -> Power | None:
    draw = r.read("nvmlDeviceGetPowerUsage", h)  # milliwatts
    limit = r.read("nvmlDeviceGetEnforcedPowerLimit", h)
    if draw is None and limit is None:
        return None
    return Power(draw_w=_watts(draw), limit_w=_watts(limit))


def read_pcie(r: Reader, h: Any) -> Pcie | None:
    pcie = Pcie(
        gen=_int(r.read("nvmlDeviceGetCurrPcieLinkGeneration", h)),
        max_gen=_int(r.read("nvmlDeviceGetMaxPcieLinkGeneration", h)),
        width=_int(r.read("nvmlDeviceGetCurrPcieLinkWidth", h)),
        max_width=_int(r.read("nvmlDeviceGetMaxPcieLinkWidth", h)),
        replays=_int(r.read("nvmlDeviceGetPcieReplayCounter", h)),
    )
    return None if pcie == Pcie() else pcie


def read_nvlink(r: Reader, h: Any) -> tuple[NvLink, ...] | None:
    """Links from 0 up to the first one the GPU does not have (18 on Hopper)."""
    links = []
    for link in range(int(getattr(r.nv, "NVML_NVLINK_MAX_LINKS", 18))):
        state = _link_state(r, h, link)
        if state is None:
            break
        links.append(_link(r, h, link, bool(state)))
    return tuple(links) or None


def _link_state(r: Reader, h: Any, link: int) -> int | None:
    nv = r.nv
    fn = getattr(nv, "nvmlDeviceGetNvLinkState", None)
    if fn is None or r.lost:
        return None
    try:
        return int(fn(h, link))
    except (*_unsupported(nv), nv.NVMLError_InvalidArgument):
        return None  # past the GPU's last link, or no NVLink at all
    except nv.NVMLError_GpuIsLost:
        r.lost = True
        return None
    except nv.NVMLError:
        return None


def _link(r: Reader, h: Any, link: int, active: bool) -> NvLink:
    nv = r.nv

    def counter(name: str) -> int | None:
        return _int(r.read("nvmlDeviceGetNvLinkErrorCounter", h, link, getattr(nv, name)))

    return NvLink(
        link=link,
        active=active,
        replay=counter("NVML_NVLINK_ERROR_DL_REPLAY"),
        recovery=counter("NVML_NVLINK_ERROR_DL_RECOVERY"),
        crc_flit=counter("NVML_NVLINK_ERROR_DL_CRC_FLIT"),
        crc_data=counter("NVML_NVLINK_ERROR_DL_CRC_DATA"),
    )


# The fabric info structs the binding may have, newest first, each with the call that
# fills it: nvmlDeviceGetGpuFabricInfoV (NVML 12.4) takes a versioned struct (nvml.h
# now types it as v3, v2 deprecated; a driver that does not know the version answers
# ARGUMENT_VERSION_MISMATCH), nvmlDeviceGetGpuFabricInfo (NVML 12.0, Hopper) the
# unversioned one.
_FABRIC_CALLS = (
    ("c_nvmlGpuFabricInfo_v3_t", "nvmlDeviceGetGpuFabricInfoV"),
    ("c_nvmlGpuFabricInfo_v2_t", "nvmlDeviceGetGpuFabricInfoV"),
    ("c_nvmlGpuFabricInfo_t", "nvmlDeviceGetGpuFabricInfo"),
)


def read_fabric(r: Reader, h: Any) -> Fabric | None:
    """The GPU's NVLink fabric registration, asked the newest way the binding and the
    driver both know. State NOT_SUPPORTED (0) is None: not a fabric-managed GPU
    (e.g. H100 PCIe)."""
    nv = r.nv
    asks = [(getattr(nv, struct)(), fn) for struct, fn in _FABRIC_CALLS if hasattr(nv, struct)]
    answered = r.first(*((fn, (h, ctypes.byref(info))) for info, fn in asks))
    info = None if answered is None else asks[answered][0]
    state = None if info is None else _FABRIC_STATES.get(int(info.state))
    if info is None or state is None:
        return None
    status = int(info.status)
    return Fabric(
        state=state,
        status="success" if status == 0 else _error_text(nv, status),
        clique_id=_int(getattr(info, "cliqueId", None)),
        cluster_uuid=_uuid(getattr(info, "clusterUuid", None)),
    )


def read_recovery_action(r: Reader, h: Any) -> int | None:
    value = r.fields(h, [FI_RECOVERY_ACTION]).get(FI_RECOVERY_ACTION)
    return None if value is None else int(value)


def read_utilization(r: Reader, h: Any) -> int | None:
    util = r.read("nvmlDeviceGetUtilizationRates", h)
    return None if util is None else int(util.gpu)


def _error_text(nv: Any, code: int) -> str:
    try:
        return str(nv.nvmlErrorString(code))
    except Exception:
        return f"NVML error {code}"


def _uuid(raw: Any) -> str | None:
    """The fabric's cluster UUID (16 bytes) as a canonical UUID string; all zeros
    (no cluster) is None. The nvidia_smi backend writes it the same way."""
    if raw is None:
        return None
    data = bytes(raw)
    return str(uuid.UUID(bytes=data)) if len(data) == 16 and any(data) else None


def _watts(milliwatts: Any) -> float | None:
    return None if milliwatts is None else round(int(milliwatts) / 1000.0, 3)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
