"""The NVML double (scripts/nvml-double) through the real pynvml, as the agent uses it."""

from __future__ import annotations

import ctypes
import textwrap
import threading
import uuid
from pathlib import Path

import pynvml as nv
import pytest

from tests.nvmldouble import NvmlDouble, gpu_double, load, run_in_subprocess

HGX_BUS_IDS = [f"00000000:{bus}:00.0" for bus in ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")]
THRESHOLDS = (
    nv.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN,
    nv.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN,
    nv.NVML_TEMPERATURE_THRESHOLD_GPU_MAX,
    nv.NVML_TEMPERATURE_THRESHOLD_MEM_MAX,
)


def handle(i: int) -> object:
    return nv.nvmlDeviceGetHandleByIndex(i)


def gpus(path: Path) -> list[dict[str, object]]:
    listed = gpu_double.read(path)["gpus"]
    assert isinstance(listed, list)
    return listed


def links(h: object) -> int:
    n = 0
    while True:
        try:
            nv.nvmlDeviceGetNvLinkState(h, n)
        except nv.NVMLError_InvalidArgument:
            return n
        n += 1


def fabric_v(h: object, struct: type[ctypes.Structure]) -> ctypes.Structure:
    info = struct()
    nv.nvmlDeviceGetGpuFabricInfoV(h, ctypes.byref(info))
    return info


def test_h100_preset_through_pynvml(nvml_double: NvmlDouble) -> None:
    assert nv.nvmlDeviceGetCount() == 8
    assert nv.nvmlSystemGetDriverVersion() == "550.54.15"
    hs = [handle(i) for i in range(8)]
    assert {nv.nvmlDeviceGetName(h) for h in hs} == {"NVIDIA H100 80GB HBM3"}
    assert [nv.nvmlDeviceGetPciInfo(h).busId for h in hs] == HGX_BUS_IDS
    assert nv.nvmlDeviceGetPciInfo(hs[1]).busIdLegacy == "0000:2A:00.0"
    assert [nv.nvmlDeviceGetIndex(h) for h in hs] == list(range(8))
    uuids = [nv.nvmlDeviceGetUUID(h) for h in hs]
    assert len(set(uuids)) == 8 and all(u.startswith("GPU-") for u in uuids)
    assert nv.nvmlDeviceGetHandleByPciBusId("0000:5d:00.0").contents  # any case, short form
    assert nv.nvmlDeviceGetIndex(nv.nvmlDeviceGetHandleByUUID(uuids[5])) == 5
    h = hs[0]
    assert [nv.nvmlDeviceGetTemperatureThreshold(h, t) for t in THRESHOLDS] == [95, 89, 87, 95]
    assert links(h) == 18 and nv.nvmlDeviceGetNvLinkState(h, 17) == 1
    assert nv.nvmlDeviceGetEnforcedPowerLimit(h) == 700_000
    assert (nv.nvmlDeviceGetMaxPcieLinkGeneration(h), nv.nvmlDeviceGetMaxPcieLinkWidth(h)) == (
        5,
        16,
    )
    assert nv.nvmlDeviceGetEccMode(h) == [1, 1]
    assert nv.nvmlDeviceGetRemappedRows(h) == (0, 0, 0, 0)
    assert nv.nvmlDeviceGetMemoryInfo(h).total == 81559 * 2**20
    info = fabric_v(h, nv.c_nvmlGpuFabricInfo_v3_t)
    assert (info.state, info.status) == (nv.NVML_GPU_FABRIC_STATE_COMPLETED, nv.NVML_SUCCESS)
    assert info.cliqueId == 0 and not any(info.clusterUuid)  # one HGX board, as recorded
    with pytest.raises(nv.NVMLError_NotSupported):  # no page retirement since Ampere
        nv.nvmlDeviceGetRetiredPages(h, nv.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)


def test_identities_are_derived_from_the_node_name(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    gpu_double.write_node(a, "node1")
    gpu_double.write_node(b, "node1", preset="a100-sxm4")
    gpu_double.write_node(c, "node2")

    def uuids(path: Path) -> list[object]:
        return [g["uuid"] for g in gpus(path)]

    assert uuids(a) == uuids(b) != uuids(c)


def test_a100_and_h200_presets(nvml_double: NvmlDouble) -> None:
    nvml_double.write(preset="a100-sxm4", gpus=4)
    assert nv.nvmlDeviceGetCount() == 4
    h = handle(0)
    assert nv.nvmlDeviceGetName(h) == "NVIDIA A100-SXM4-80GB"
    assert [nv.nvmlDeviceGetTemperatureThreshold(h, t) for t in THRESHOLDS] == [92, 89, 85, 95]
    assert links(h) == 12 and nv.nvmlDeviceGetMaxPcieLinkGeneration(h) == 4
    with pytest.raises(nv.NVMLError_NotSupported):  # Ampere has no fabric info
        fabric_v(h, nv.c_nvmlGpuFabricInfoV_t)
    with pytest.raises(nv.NVMLError_NotSupported):
        nv.nvmlDeviceGetGpuFabricInfo(h, ctypes.byref(nv.c_nvmlGpuFabricInfo_t()))
    nvml_double.write(preset="h200-sxm")
    h = handle(7)
    assert nv.nvmlDeviceGetName(h) == "NVIDIA H200"
    assert nv.nvmlDeviceGetMemoryInfo(h).total == 143771 * 2**20


def test_na_answers_not_supported(nvml_double: NvmlDouble) -> None:
    nvml_double.set_gpu(1, temperature_c=None, row_remap_pending=None, recovery_action=None)
    h = handle(1)
    with pytest.raises(nv.NVMLError_NotSupported):
        nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)
    with pytest.raises(nv.NVMLError_NotSupported):
        nv.nvmlDeviceGetRemappedRows(h)
    (fv,) = nv.nvmlDeviceGetFieldValues(h, [nv.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION])
    assert fv.nvmlReturn == nv.NVML_ERROR_NOT_SUPPORTED
    assert nv.nvmlDeviceGetTemperature(handle(0), nv.NVML_TEMPERATURE_GPU) == 35


def test_a_lost_gpu_keeps_its_identity_and_answers_nothing_else(nvml_double: NvmlDouble) -> None:
    uuid = nv.nvmlDeviceGetUUID(handle(6))
    nvml_double.set_gpu(6, lost=True)
    assert nv.nvmlDeviceGetCount() == 8
    h = handle(6)
    assert nv.nvmlDeviceGetUUID(h) == uuid and nv.nvmlDeviceGetPciInfo(h).busId == HGX_BUS_IDS[6]
    assert nv.nvmlDeviceGetName(h) and nv.nvmlDeviceGetSerial(h)
    for call in (nv.nvmlDeviceGetPowerUsage, nv.nvmlDeviceGetEccMode, nv.nvmlDeviceGetIndex):
        with pytest.raises(nv.NVMLError_GpuIsLost):
            call(h)
    with pytest.raises(nv.NVMLError_GpuIsLost):
        nv.nvmlDeviceGetFieldValues(h, [nv.NVML_FI_DEV_MEMORY_TEMP])


def test_a_gpu_that_stops_enumerating_shifts_the_indices(nvml_double: NvmlDouble) -> None:
    uuids = [nv.nvmlDeviceGetUUID(handle(i)) for i in range(8)]
    old = handle(3)
    nvml_double.set_gpu(3, present=False)
    assert nv.nvmlDeviceGetCount() == 7
    assert [nv.nvmlDeviceGetUUID(handle(i)) for i in range(7)] == uuids[:3] + uuids[4:]
    with pytest.raises(nv.NVMLError_InvalidArgument):
        handle(7)
    with pytest.raises(nv.NVMLError_NotFound):
        nv.nvmlDeviceGetHandleByUUID(uuids[3])
    with pytest.raises(nv.NVMLError_GpuIsLost):  # a handle taken before
        nv.nvmlDeviceGetPowerUsage(old)


def test_injected_return_codes(nvml_double: NvmlDouble) -> None:
    nvml_double.set_gpu(2, fail={"nvmlDeviceGetPowerUsage": 999, "nvmlDeviceGetUUID": 16})
    nvml_double.set_gpu(5, fail={"nvmlDeviceGetHandleByIndex_v2": 15})
    h = handle(2)
    with pytest.raises(nv.NVMLError_Unknown):
        nv.nvmlDeviceGetPowerUsage(h)
    with pytest.raises(nv.NVMLError_ResetRequired):
        nv.nvmlDeviceGetUUID(h)
    assert nv.nvmlDeviceGetPowerUsage(handle(1)) == 70_000
    with pytest.raises(nv.NVMLError_GpuIsLost):
        handle(5)
    nvml_double.set_gpu(2, fail={"nvmlDeviceGetPowerUsage": None})  # removes that one
    assert nv.nvmlDeviceGetPowerUsage(handle(2)) == 70_000
    assert gpus(nvml_double.path)[2]["fail"] == {"nvmlDeviceGetUUID": 16}


VALUE_MEMBERS = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")


def test_field_values_answer_per_entry(nvml_double: NvmlDouble) -> None:
    nvml_double.set_gpu(
        0, memory_temperature_c=51, clock_counter_hw_thermal_ns=7_000, recovery_action=None
    )
    ids = [82, 270, 230, 75, 99999]  # memory temp, HW thermal ns, recovery, unmodelled, bogus
    values = nv.nvmlDeviceGetFieldValues(handle(0), ids)
    got = [(v.fieldId, v.nvmlReturn) for v in values]
    assert got == [(82, 0), (270, 0), (230, 3), (75, 3), (99999, 2)]
    assert (values[0].valueType, values[0].value.uiVal) == (nv.NVML_VALUE_TYPE_UNSIGNED_INT, 51)
    assert (values[1].valueType, values[1].value.ullVal) == (3, 7_000)
    assert values[0].timestamp > 1_600_000_000 * 10**6  # microseconds since 1970


@pytest.mark.parametrize("value_type", range(7))
def test_a_field_answers_with_any_value_type(nvml_double: NvmlDouble, value_type: int) -> None:
    nvml_double.set_gpu(4, recovery_action=2, field_types={230: value_type})
    (fv,) = nv.nvmlDeviceGetFieldValues(handle(4), [nv.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION])
    assert (fv.nvmlReturn, fv.valueType) == (0, value_type)
    assert getattr(fv.value, VALUE_MEMBERS[value_type]) == 2


def test_the_file_is_reread_under_a_running_nvml(nvml_double: NvmlDouble) -> None:
    h = handle(0)
    for temperature in (36, 37, 38):  # same size, within a timestamp tick
        nvml_double.set_gpu(0, temperature_c=temperature)
        handle(0)  # the double re-reads a changed file here (and at GetCount, nvmlInit)
        assert nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU) == temperature
    nvml_double.set_gpu(7, present=False)
    assert nv.nvmlDeviceGetCount() == 7
    nvml_double.reset()
    assert nv.nvmlDeviceGetCount() == 8
    assert nv.nvmlDeviceGetTemperature(handle(0), nv.NVML_TEMPERATURE_GPU) == 35


def test_ecc_counters_by_location_and_sram_status(nvml_double: NvmlDouble) -> None:
    nvml_double.set_gpu(
        3,
        ecc_volatile_uncorrected_dram=2,
        ecc_volatile_uncorrected_sram=1,
        ecc_aggregate_corrected_sram=40,
        sram_threshold_exceeded=True,
    )
    h = handle(3)
    unc, vol, agg = (
        nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
        nv.NVML_VOLATILE_ECC,
        nv.NVML_AGGREGATE_ECC,
    )
    assert nv.nvmlDeviceGetTotalEccErrors(h, unc, vol) == 3
    dram, sram = nv.NVML_MEMORY_LOCATION_DRAM, nv.NVML_MEMORY_LOCATION_SRAM
    assert nv.nvmlDeviceGetMemoryErrorCounter(h, unc, vol, dram) == 2
    assert nv.nvmlDeviceGetMemoryErrorCounter(h, unc, vol, sram) == 1
    with pytest.raises(nv.NVMLError_NotSupported):  # Hopper counts DRAM and SRAM only
        nv.nvmlDeviceGetMemoryErrorCounter(h, unc, vol, nv.NVML_MEMORY_LOCATION_L1_CACHE)
    status = nv.c_nvmlEccSramErrorStatus_v1_t()
    nv.nvmlDeviceGetSramEccErrorStatus(h, ctypes.byref(status))
    assert (status.volatileUncSecDed, status.aggregateCor, status.bThresholdExceeded) == (1, 40, 1)
    nvml_double.set_gpu(3, ecc_enabled=False)
    with pytest.raises(nv.NVMLError_NotSupported):
        nv.nvmlDeviceGetTotalEccErrors(handle(3), unc, agg)


def test_retired_pages_as_pynvml_asks_for_them(nvml_double: NvmlDouble) -> None:
    nvml_double.set_gpu(0, retired_pages_sbe=3, retired_pages_dbe=0, retired_pages_pending=True)
    h = handle(0)
    sbe = nv.nvmlDeviceGetRetiredPages(
        h, nv.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS
    )
    assert len(sbe) == 3 and len(set(sbe)) == 3
    assert nv.nvmlDeviceGetRetiredPages(h, nv.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR) == []
    assert nv.nvmlDeviceGetRetiredPagesPendingStatus(h) == 1


def test_nvlink_counters_and_down_links(nvml_double: NvmlDouble) -> None:
    nvml_double.set_gpu(1, nvlink_down=[4], nvlink_replay={4: 12}, nvlink_crc_flit={0: 3})
    nvml_double.set_gpu(1, nvlink_replay={5: 1})  # merges per link
    h = handle(1)
    assert [nv.nvmlDeviceGetNvLinkState(h, i) for i in range(6)] == [1, 1, 1, 1, 0, 1]
    replay = [
        nv.nvmlDeviceGetNvLinkErrorCounter(h, i, nv.NVML_NVLINK_ERROR_DL_REPLAY) for i in range(6)
    ]
    assert replay == [0, 0, 0, 0, 12, 1]
    assert nv.nvmlDeviceGetNvLinkErrorCounter(h, 0, nv.NVML_NVLINK_ERROR_DL_CRC_FLIT) == 3
    with pytest.raises(nv.NVMLError_InvalidArgument):
        nv.nvmlDeviceGetNvLinkErrorCounter(h, 18, nv.NVML_NVLINK_ERROR_DL_REPLAY)
    nvml_double.set_gpu(1, nvlink_links=0)
    with pytest.raises(nv.NVMLError_NotSupported):
        nv.nvmlDeviceGetNvLinkState(handle(1), 0)


def test_fabric_info_versions(nvml_double: NvmlDouble) -> None:
    cluster = "2f1d6e4c-9b8a-4c3d-8e7f-0a1b2c3d4e5f"
    nvml_double.set_gpu(
        2,
        fabric_state=2,
        fabric_health_mask=0x5,
        fabric_health_summary=2,
        fabric_cluster_uuid=cluster,
    )
    h = handle(2)
    v2 = fabric_v(h, nv.c_nvmlGpuFabricInfoV_t)  # pynvml's V struct is v2 (36 bytes)
    assert (v2.version, v2.state, v2.healthMask) == (nv.nvmlGpuFabricInfo_v2, 2, 0x5)
    v3 = fabric_v(h, nv.c_nvmlGpuFabricInfo_v3_t)
    assert (v3.version, v3.state, v3.healthSummary) == (nv.nvmlGpuFabricInfo_v3, 2, 2)
    legacy = nv.c_nvmlGpuFabricInfo_t()
    nv.nvmlDeviceGetGpuFabricInfo(h, ctypes.byref(legacy))
    assert bytes(legacy.clusterUuid) == bytes(v3.clusterUuid) == uuid.UUID(cluster).bytes
    assert legacy.state == 2
    nvml_double.set_node(fabric_info_versions=[2])
    with pytest.raises(nv.NVMLError_ArgumentVersionMismatch):
        fabric_v(handle(2), nv.c_nvmlGpuFabricInfo_v3_t)
    zero = nv.c_nvmlGpuFabricInfoV_t()
    zero.version = 0
    with pytest.raises(nv.NVMLError_ArgumentVersionMismatch):
        nv.nvmlDeviceGetGpuFabricInfoV(h, ctypes.byref(zero))


def test_v2_struct_gets_only_its_own_bytes(nvml_double: NvmlDouble) -> None:
    class Guarded(ctypes.Structure):
        _fields_ = [("info", nv.c_nvmlGpuFabricInfoV_t), ("guard", ctypes.c_uint32)]

    g = Guarded()
    g.info.version, g.guard = nv.nvmlGpuFabricInfo_v2, 0xA5A5A5A5
    nv.nvmlDeviceGetGpuFabricInfoV(handle(0), ctypes.byref(g.info))
    assert g.info.state == 3 and g.guard == 0xA5A5A5A5


def test_length_arguments_and_null_pointers(nvml_double: NvmlDouble) -> None:
    lib = load()  # the C functions themselves: pynvml always passes big enough buffers
    h = ctypes.c_void_p()
    assert lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(0), ctypes.byref(h)) == 0
    small = ctypes.create_string_buffer(10)
    assert lib.nvmlDeviceGetUUID(h, small, ctypes.c_uint(10)) == nv.NVML_ERROR_INSUFFICIENT_SIZE
    assert lib.nvmlDeviceGetName(h, None, ctypes.c_uint(96)) == nv.NVML_ERROR_INVALID_ARGUMENT
    assert lib.nvmlDeviceGetPowerUsage(h, None) == nv.NVML_ERROR_INVALID_ARGUMENT
    assert lib.nvmlDeviceGetCount_v2(None) == nv.NVML_ERROR_INVALID_ARGUMENT
    not_a_handle = ctypes.c_void_p(16)
    assert lib.nvmlDeviceGetPowerUsage(not_a_handle, ctypes.byref(ctypes.c_uint())) == 2


def test_init_without_a_state_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    load()
    monkeypatch.delenv(gpu_double.STATE_ENV, raising=False)
    with pytest.raises(nv.NVMLError_DriverNotLoaded):
        nv.nvmlInit()
    assert "NVML_DOUBLE_STATE is not set" in capfd.readouterr().err
    broken = tmp_path / "broken.state"
    gpu_double.write_node(broken, "node1")
    broken.write_text(broken.read_text().replace("gpu 1 lost 0", "gpu 1 lost maybe"))
    monkeypatch.setenv(gpu_double.STATE_ENV, str(broken))
    with pytest.raises(nv.NVMLError_DriverNotLoaded):
        nv.nvmlInit()
    err = capfd.readouterr().err.strip()
    assert err.startswith(f"nvml double: {broken}:") and "lost: not a number" in err
    gpu_double.write_node(broken, "node1", init_error=18)
    with pytest.raises(nv.NVMLError_LibRmVersionMismatch):
        nv.nvmlInit()
    assert nv.nvmlErrorString(nv.NVML_ERROR_GPU_IS_LOST) == "GPU is lost"


def test_calls_before_init_answer_uninitialized(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import pynvml as nv
        try:
            nv.nvmlInit()  # no state file yet: pynvml has loaded the library all the same
        except nv.NVMLError_DriverNotLoaded:
            print("driver not loaded")
        for call in (nv.nvmlShutdown, nv.nvmlDeviceGetCount, nv.nvmlSystemGetDriverVersion):
            try:
                call()
            except nv.NVMLError_Uninitialized:
                print("uninitialized")
        """
    )
    done = run_in_subprocess(code, tmp_path / "not-there")
    assert done.returncode == 0, done
    assert done.stdout.split("\n")[:4] == ["driver not loaded"] + ["uninitialized"] * 3
    assert "cannot read the state file" in done.stderr and "not-there" in done.stderr


def test_threads_read_while_the_state_changes(nvml_double: NvmlDouble) -> None:
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(200):
                h = nv.nvmlDeviceGetHandleByIndex(nv.nvmlDeviceGetCount() - 1)
                nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for temperature in range(40, 60):
        nvml_double.set_gpu(7, temperature_c=temperature)
    for t in threads:
        t.join()
    assert errors == []


def test_a_struct_passed_by_value_aborts_loudly(tmp_path: Path) -> None:
    state = tmp_path / "s"
    gpu_double.write_node(state, "node1")
    code = textwrap.dedent(
        """
        import pynvml as nv
        nv.nvmlInit()
        nv.nvmlDeviceGetGpuFabricInfo(nv.nvmlDeviceGetHandleByIndex(0), nv.c_nvmlGpuFabricInfo_t())
        print("survived")
        """
    )
    done = run_in_subprocess(code, state)
    assert done.returncode == -6, done
    assert "survived" not in done.stdout
    assert "nvml double: nvmlDeviceGetGpuFabricInfo was given an invalid pointer 0x" in done.stderr
    assert "(a struct passed by value?)" in done.stderr


def test_the_r535_driver_lacks_the_newer_symbols(tmp_path: Path) -> None:
    state = tmp_path / "s"
    gpu_double.write_node(state, "node1")
    code = textwrap.dedent(
        """
        import ctypes, pynvml as nv
        nv.nvmlInit()
        h = nv.nvmlDeviceGetHandleByIndex(0)
        for call in (
            lambda: nv.nvmlDeviceGetGpuFabricInfoV(h, ctypes.byref(nv.c_nvmlGpuFabricInfoV_t())),
            lambda: nv.nvmlDeviceGetSramEccErrorStatus(
                h, ctypes.byref(nv.c_nvmlEccSramErrorStatus_v1_t())),
        ):
            try:
                call()
            except nv.NVMLError_FunctionNotFound:
                print("function not found")
        (fv,) = nv.nvmlDeviceGetFieldValues(h, [nv.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION])
        print("field 230", fv.nvmlReturn)
        legacy = nv.c_nvmlGpuFabricInfo_t()
        nv.nvmlDeviceGetGpuFabricInfo(h, ctypes.byref(legacy))
        print("fabric state", legacy.state)
        """
    )
    done = run_in_subprocess(code, state, driver="r535")
    assert done.returncode == 0, done
    assert done.stdout.splitlines() == [
        "function not found",
        "function not found",
        "field 230 3",
        "fabric state 3",
    ]
