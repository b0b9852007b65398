"""Parsing real `nvidia-smi -q -x` outputs (tests/fixtures/gpu) into GpuSamples."""

from __future__ import annotations

import pytest

from hpresil.adapters.gpu.records import (
    ClockCounters,
    ClockReason,
    EccCounts,
    Pcie,
    Power,
    RetiredPages,
    RowRemap,
    Thermal,
)
from hpresil.adapters.gpu.smi_xml import parse_smi_xml
from hpresil.errors import GpuError
from tests.unit.gpu.samples import A100, BLACKWELL, FIXTURES, REAL, T4, real


@pytest.mark.parametrize("name", REAL)
def test_every_fixture_parses_with_an_identity_and_no_error(name: str) -> None:
    (gpu,) = real(name)
    assert gpu.identity.index == 0 and gpu.identity.uuid and gpu.identity.uuid.startswith("GPU-")
    assert gpu.identity.pci_bus_id and gpu.identity.name
    assert not gpu.lost and gpu.error is None
    assert gpu.nvlink is None  # -q -x has no NVLink section


def test_a100_with_mig() -> None:
    (gpu,) = real(A100)
    assert gpu.identity.pci_bus_id == "0000:01:00" and gpu.identity.serial == "1650522003820"
    assert (gpu.ecc_uncorrected_volatile, gpu.ecc_corrected_volatile) == (0, 0)
    assert gpu.ecc is not None and gpu.ecc.enabled is True and gpu.ecc.pending_enabled is True
    assert gpu.ecc.aggregate == EccCounts(0, 0, 0, 0, 0, 0)
    assert gpu.row_remap is None  # N/A while MIG instances exist
    assert gpu.retired_pages is None  # Ampere: no page retirement
    assert gpu.temperature_c == 27
    assert gpu.thermal == Thermal(
        memory_c=44, shutdown_c=92, slowdown_c=89, gpu_max_c=85, mem_max_c=95
    )
    assert gpu.clock_events is not None and gpu.clock_events.reasons == 0
    assert gpu.power == Power(draw_w=67.03, limit_w=500.0)
    assert gpu.pcie == Pcie(gen=4, max_gen=4, width=16, max_width=16, replays=0)
    assert gpu.utilization_pct is None  # N/A under MIG
    assert gpu.fabric is None and gpu.recovery_action is None


def test_t4_before_ampere() -> None:
    (gpu,) = real(T4)
    assert gpu.retired_pages == RetiredPages(single_bit=0, double_bit=0, pending=False)
    assert gpu.row_remap is None
    assert gpu.thermal is not None and gpu.thermal.memory_c is None
    assert (gpu.thermal.shutdown_c, gpu.thermal.slowdown_c, gpu.thermal.gpu_max_c) == (96, 93, 85)
    assert gpu.clock_events is not None and gpu.clock_events.reasons == 0  # throttle_reasons
    assert gpu.power == Power(draw_w=26.78, limit_w=70.0)  # old power_readings
    assert gpu.pcie is not None and (gpu.pcie.width, gpu.pcie.max_width) == (8, 16)
    assert gpu.utilization_pct == 0


def test_blackwell_newest_schema() -> None:
    (gpu,) = real(BLACKWELL)
    assert gpu.ecc is not None and gpu.ecc.enabled is False
    assert gpu.ecc.volatile is None and gpu.ecc_uncorrected_volatile is None
    assert gpu.row_remap == RowRemap(correctable=0, uncorrectable=0, pending=False, failure=False)
    assert gpu.recovery_action == 0
    assert gpu.power == Power(draw_w=3.99, limit_w=300.0)  # instant_power_draw
    assert gpu.clock_events is not None
    assert gpu.clock_events.counters == ClockCounters(
        sw_power_cap_us=25483012608,
        sync_boost_us=0,
        sw_thermal_us=0,
        hw_thermal_us=0,
        hw_power_brake_us=0,
    )
    # T.Limit 24 + 68 = 92 C; shutdown at -5, slowdown at -2, max operating at 0
    assert gpu.thermal == Thermal(
        memory_c=None, shutdown_c=97, slowdown_c=94, gpu_max_c=92, mem_max_c=None
    )
    assert gpu.pcie is not None and (gpu.pcie.gen, gpu.pcie.max_gen) == (1, 4)


def _edit(name: str, old: str, new: str) -> str:
    text = (FIXTURES / name).read_text()
    assert old in text, old
    return text.replace(old, new, 1)


def test_active_reasons_become_the_nvml_bitmask() -> None:
    tag = "clocks_event_reason_hw_thermal_slowdown"
    xml = _edit(A100, f"<{tag}>Not Active</{tag}>", f"<{tag}>Active</{tag}>")
    xml = xml.replace(
        "<clocks_event_reason_gpu_idle>Not Active", "<clocks_event_reason_gpu_idle>Active"
    )
    (gpu,) = parse_smi_xml(xml)
    assert gpu.clock_events is not None
    assert gpu.clock_events.reasons == ClockReason.HW_THERMAL | ClockReason.GPU_IDLE


def test_row_remap_pending_and_failure_are_read() -> None:
    xml = _edit(BLACKWELL, "<remapped_row_pending>No<", "<remapped_row_pending>Yes<")
    xml = xml.replace("<remapped_row_unc>0<", "<remapped_row_unc>600<")
    (gpu,) = parse_smi_xml(xml)
    assert gpu.row_remap == RowRemap(correctable=0, uncorrectable=600, pending=True, failure=False)


def test_fabric_and_recovery_action_values() -> None:
    xml = _edit(BLACKWELL, "<state>N/A</state>", "<state>In Progress</state>")
    xml = xml.replace("<status>N/A</status>", "<status>Success</status>", 1)
    xml = xml.replace("<gpu_recovery_action>None<", "<gpu_recovery_action>Drain and Reset<")
    (gpu,) = parse_smi_xml(xml)
    assert gpu.fabric is not None and gpu.fabric.state.value == "in_progress"
    assert gpu.fabric.status == "success" and not gpu.fabric.healthy
    assert gpu.recovery_action == 4


def test_unknown_error_values_are_kept_as_the_sample_error() -> None:
    xml = _edit(A100, "<gpu_temp>27 C</gpu_temp>", "<gpu_temp>Unknown Error</gpu_temp>")
    (gpu,) = parse_smi_xml(xml)
    assert gpu.temperature_c is None
    assert gpu.error == "temperature/gpu_temp: Unknown Error"


def test_old_single_and_double_bit_totals() -> None:
    ecc = (
        "<ecc_errors><volatile><single_bit><total>7</total></single_bit>"
        "<double_bit><total>1</total></double_bit></volatile></ecc_errors>"
    )
    xml = (
        f'<nvidia_smi_log><gpu id="00000000:04:00.0"><uuid>GPU-x</uuid>{ecc}</gpu></nvidia_smi_log>'
    )
    (gpu,) = parse_smi_xml(xml)
    assert (gpu.ecc_corrected_volatile, gpu.ecc_uncorrected_volatile) == (7, 1)
    assert gpu.identity.pci_bus_id == "0000:04:00"


@pytest.mark.parametrize("text", ["", "not xml", "<html></html>"])
def test_not_an_nvidia_smi_document_is_a_gpu_error(text: str) -> None:
    with pytest.raises(GpuError, match="nvidia-smi XML"):
        parse_smi_xml(text)
