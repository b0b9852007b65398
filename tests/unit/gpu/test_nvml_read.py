"""The NVML backend's feature detection, against a stand-in for the pynvml module.

No GPU here: a namespace with pynvml's names plays the library, answering some calls,
raising NotSupported, GpuIsLost or another error for others, and lacking some
functions altogether (an older binding). The real thing: test_nvml.py (``-m gpu``).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hpresil.adapters.gpu.nvml import read_sample
from hpresil.adapters.gpu.records import FabricState, NvLink


class NVMLError(Exception):
    pass


class NotSupported(NVMLError):
    pass


class GpuIsLost(NVMLError):
    pass


class InvalidArgument(NVMLError):
    pass


class UnknownError(NVMLError):
    def __str__(self) -> str:
        return "Unknown Error"


def _raise(exc: type[Exception]) -> Any:
    def fn(*_: Any) -> Any:
        raise exc()

    return fn


def fake_nvml(**overrides: Any) -> SimpleNamespace:
    """An H100-like GPU behind pynvml's names; ``overrides`` replace functions."""

    def field_values(_h: Any, ids: list[int]) -> list[SimpleNamespace]:
        known = {82: 41, 230: 0, 74: 5_000_000, 76: 0, 269: 0, 270: 2_000_000, 271: 0}
        return [
            SimpleNamespace(
                fieldId=i,
                nvmlReturn=0 if i in known else 3,
                valueType=3,
                value=SimpleNamespace(ullVal=known.get(i, 0)),
            )
            for i in ids
        ]

    def fabric(_h: Any, info: SimpleNamespace) -> int:
        info.state, info.status, info.cliqueId, info.clusterUuid = 3, 0, 7, bytes(16)
        return 0

    def link_state(_h: Any, link: int) -> int:
        if link >= 18:
            raise NotSupported()
        return 0 if link == 5 else 1

    thresholds = {0: 92, 1: 89, 2: 95, 3: 87}
    nv = SimpleNamespace(
        NVMLError=NVMLError,
        NVMLError_NotSupported=NotSupported,
        NVMLError_GpuIsLost=GpuIsLost,
        NVMLError_InvalidArgument=InvalidArgument,
        NVML_TEMPERATURE_GPU=0,
        NVML_VOLATILE_ECC=0,
        NVML_AGGREGATE_ECC=1,
        NVML_MEMORY_ERROR_TYPE_CORRECTED=0,
        NVML_MEMORY_ERROR_TYPE_UNCORRECTED=1,
        NVML_MEMORY_LOCATION_DRAM=2,
        NVML_MEMORY_LOCATION_SRAM=7,
        NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS=0,
        NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR=1,
        NVML_TEMPERATURE_THRESHOLD_SHUTDOWN=0,
        NVML_TEMPERATURE_THRESHOLD_SLOWDOWN=1,
        NVML_TEMPERATURE_THRESHOLD_MEM_MAX=2,
        NVML_TEMPERATURE_THRESHOLD_GPU_MAX=3,
        NVML_NVLINK_MAX_LINKS=36,
        NVML_NVLINK_ERROR_DL_REPLAY=0,
        NVML_NVLINK_ERROR_DL_RECOVERY=1,
        NVML_NVLINK_ERROR_DL_CRC_FLIT=2,
        NVML_NVLINK_ERROR_DL_CRC_DATA=3,
        nvmlDeviceGetHandleByIndex=lambda i: f"h{i}",
        nvmlDeviceGetPciInfo=lambda h: SimpleNamespace(busId=b"00000000:18:00.0"),
        nvmlDeviceGetUUID=lambda h: "GPU-abc",
        nvmlDeviceGetSerial=lambda h: "1650000000001",
        nvmlDeviceGetName=lambda h: "NVIDIA H100 80GB HBM3",
        nvmlDeviceGetTemperature=lambda h, sensor: 35,
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=97, memory=40),
        nvmlDeviceGetEccMode=lambda h: [1, 1],
        nvmlDeviceGetTotalEccErrors=lambda h, kind, counter: 3 if kind == 0 else 0,
        nvmlDeviceGetMemoryErrorCounter=lambda h, kind, counter, where: (
            3 if (kind, where) == (0, 2) else 0
        ),
        nvmlDeviceGetRemappedRows=lambda h: (2, 0, 1, 0),
        nvmlDeviceGetRetiredPages=_raise(NotSupported),
        nvmlDeviceGetRetiredPagesPendingStatus=_raise(NotSupported),
        nvmlDeviceGetTemperatureThreshold=lambda h, which: thresholds[which],
        nvmlDeviceGetFieldValues=field_values,
        nvmlDeviceGetCurrentClocksEventReasons=lambda h: 0x41,
        nvmlDeviceGetSupportedClocksEventReasons=lambda h: 0x1FF,
        nvmlDeviceGetPowerUsage=lambda h: 512_345,
        nvmlDeviceGetEnforcedPowerLimit=lambda h: 700_000,
        nvmlDeviceGetCurrPcieLinkGeneration=lambda h: 5,
        nvmlDeviceGetMaxPcieLinkGeneration=lambda h: 5,
        nvmlDeviceGetCurrPcieLinkWidth=lambda h: 16,
        nvmlDeviceGetMaxPcieLinkWidth=lambda h: 16,
        nvmlDeviceGetPcieReplayCounter=lambda h: 4,
        nvmlDeviceGetNvLinkState=link_state,
        nvmlDeviceGetNvLinkErrorCounter=lambda h, link, counter: link * 10 + counter,
        c_nvmlGpuFabricInfoV_t=SimpleNamespace,
        nvmlDeviceGetGpuFabricInfoV=fabric,
        nvmlErrorString=lambda code: f"error {code}",
    )
    for name, value in overrides.items():
        setattr(nv, name, value)
    return nv


def test_every_record_is_read() -> None:
    gpu = read_sample(fake_nvml(), 0)
    assert gpu.error is None and not gpu.lost
    assert gpu.identity.pci_bus_id == "0000:18:00" and gpu.identity.uuid == "GPU-abc"
    assert (gpu.ecc_corrected_volatile, gpu.ecc_uncorrected_volatile) == (3, 0)
    assert gpu.ecc is not None and gpu.ecc.enabled and gpu.ecc.aggregate is not None
    assert gpu.ecc.aggregate.dram_corrected == 3 and gpu.ecc.aggregate.sram_corrected == 0
    assert gpu.row_remap is not None and gpu.row_remap.pending and not gpu.row_remap.failure
    assert gpu.retired_pages is None  # NotSupported: unsupported, not an error
    assert gpu.thermal is not None and gpu.thermal.memory_c == 41
    assert (gpu.thermal.gpu_max_c, gpu.thermal.mem_max_c, gpu.thermal.slowdown_c) == (87, 95, 89)
    assert gpu.clock_events is not None and gpu.clock_events.reasons == 0x41
    assert gpu.clock_events.counters is not None
    assert gpu.clock_events.counters.hw_thermal_us == 2000  # ns -> us
    assert gpu.power is not None and gpu.power.draw_w == 512.345 and gpu.power.limit_w == 700.0
    assert gpu.pcie is not None and gpu.pcie.replays == 4 and gpu.utilization_pct == 97
    assert gpu.nvlink is not None and len(gpu.nvlink) == 18
    assert gpu.nvlink[5] == NvLink(
        link=5, active=False, replay=50, recovery=51, crc_flit=52, crc_data=53
    )
    assert (
        gpu.fabric is not None and gpu.fabric.state is FabricState.COMPLETED and gpu.fabric.healthy
    )
    assert gpu.fabric.clique_id == 7 and gpu.fabric.cluster_uuid is None
    assert gpu.recovery_action == 0


def test_functions_an_older_binding_lacks_are_unsupported() -> None:
    nv = fake_nvml()
    for name in (
        "nvmlDeviceGetCurrentClocksEventReasons",
        "nvmlDeviceGetGpuFabricInfoV",
        "c_nvmlGpuFabricInfoV_t",
        "nvmlDeviceGetRemappedRows",
        "nvmlDeviceGetFieldValues",
    ):
        delattr(nv, name)
    nv.nvmlDeviceGetCurrentClocksThrottleReasons = lambda h: 0x8
    gpu = read_sample(nv, 0)
    assert gpu.error is None
    assert gpu.fabric is None and gpu.row_remap is None and gpu.recovery_action is None
    assert gpu.clock_events is not None and gpu.clock_events.reasons == 0x8  # the old name


def test_no_nvlink_is_none() -> None:
    gpu = read_sample(fake_nvml(nvmlDeviceGetNvLinkState=_raise(NotSupported)), 0)
    assert gpu.nvlink is None and gpu.error is None


def test_other_errors_are_kept_and_the_rest_still_read() -> None:
    gpu = read_sample(fake_nvml(nvmlDeviceGetPcieReplayCounter=_raise(UnknownError)), 0)
    assert gpu.error is not None and "Unknown Error" in gpu.error
    assert gpu.pcie is not None and gpu.pcie.replays is None and gpu.pcie.width == 16


def test_gpu_is_lost_midway_gives_a_lost_sample() -> None:
    gpu = read_sample(fake_nvml(nvmlDeviceGetRemappedRows=_raise(GpuIsLost)), 0)
    assert gpu.lost and gpu.row_remap is None and gpu.pcie is None
    assert gpu.identity.uuid == "GPU-abc"


def test_fabric_not_supported_state_is_none() -> None:
    def fabric(_h: Any, info: SimpleNamespace) -> int:
        info.state, info.status, info.cliqueId, info.clusterUuid = 0, 0, 0, bytes(16)
        return 0

    assert read_sample(fake_nvml(nvmlDeviceGetGpuFabricInfoV=fabric), 0).fabric is None
