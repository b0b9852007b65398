"""Parsing real `nvidia-smi -q -x` outputs (tests/fixtures/gpu) into GpuSamples.

Every expected value below was read off the fixture's XML (SOURCES.md says where
each file comes from), not copied from the parser's output.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest

from hpresil.adapters.gpu.smi_xml import parse_smi_xml
from hpresil.checks.temperature import TemperatureCheck
from hpresil.config.checks import TemperatureConfig
from hpresil.errors import GpuError
from hpresil.vocab import Action, Status
from hpresil.vocab.gpu import (
    ClockCounters,
    ClockReason,
    EccCounts,
    Fabric,
    FabricState,
    Pcie,
    Power,
    RecoveryAction,
    RetiredPages,
    RowRemap,
    Thermal,
)
from hpresil.vocab.snapshot import Snapshot
from tests.unit.gpu.samples import A10G, A100, BLACKWELL, FIXTURES, H100, L4, T4, real

H100_TEXT = "h100-80gb-hbm3-590.48.01-q-trimmed.txt"
H200_TEXT = "h200-590.48.01-q-trimmed.txt"
GPUS_IN = {A100: 1, T4: 1, BLACKWELL: 1, A10G: 1, L4: 2, H100: 8}


def _edit(name: str, old: str, new: str) -> str:
    text = (FIXTURES / name).read_text()
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize("name", sorted(GPUS_IN))
def test_every_fixture_parses_with_an_identity_and_no_error(name: str) -> None:
    gpus = real(name)
    assert [g.identity.index for g in gpus] == list(range(GPUS_IN[name]))
    for gpu in gpus:
        assert gpu.identity.uuid and gpu.identity.uuid.startswith("GPU-")
        assert gpu.identity.pci_bus_id and gpu.identity.name
        assert not gpu.lost and gpu.error is None
        assert gpu.nvlink is None  # -q -x has no NVLink section


def test_a100_with_mig() -> None:
    (gpu,) = real(A100)
    assert gpu.identity.pci_bus_id == "0000:01:00" and gpu.identity.serial == "1650522003820"
    assert gpu.ecc is not None and gpu.ecc.volatile is not None
    assert (gpu.ecc.volatile.uncorrected, gpu.ecc.volatile.corrected) == (0, 0)
    assert gpu.ecc.enabled is True and gpu.ecc.pending_enabled is True
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
    assert gpu.ecc.volatile is None
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


def test_a10g_on_a_cloud_vm() -> None:
    (gpu,) = real(A10G)
    assert gpu.identity.name == "NVIDIA A10G" and gpu.identity.pci_bus_id == "0000:00:1e"
    assert gpu.identity.uuid == "GPU-9a9a6c50-2a47-2f51-a902-b82c3b127e94"
    assert gpu.identity.serial is None  # <serial>0000000000000</serial>
    assert gpu.ecc is not None and (gpu.ecc.enabled, gpu.ecc.pending_enabled) == (True, True)
    # driver 515: sram_uncorrectable not yet split into parity and SEC-DED
    assert gpu.ecc.volatile == gpu.ecc.aggregate == EccCounts(0, 0, 0, 0, 0, 0)
    assert gpu.ecc.sram_threshold_exceeded is None  # no such element before 550
    assert gpu.row_remap == RowRemap(correctable=0, uncorrectable=0, pending=False, failure=False)
    assert gpu.retired_pages is None  # retired_count N/A
    assert gpu.temperature_c == 17
    assert gpu.thermal == Thermal(
        memory_c=None, shutdown_c=98, slowdown_c=95, gpu_max_c=88, mem_max_c=None
    )
    assert gpu.clock_events is not None and gpu.clock_events.reasons == ClockReason.GPU_IDLE
    assert gpu.power == Power(draw_w=25.58, limit_w=300.0)
    assert gpu.pcie == Pcie(gen=1, max_gen=4, width=8, max_width=16, replays=0)
    assert gpu.utilization_pct == 0
    assert gpu.fabric is None and gpu.recovery_action is None  # no such elements in v11


def test_two_l4s_one_on_a_single_lane() -> None:
    first, second = real(L4)
    assert [g.identity.pci_bus_id for g in (first, second)] == ["0000:01:00", "0000:c1:00"]
    assert (first.identity.serial, second.identity.serial) == ("1654523003308", "1654523001128")
    assert first.identity.uuid == "GPU-c5533cd4-5a60-059e-348d-b6d7466932e4"
    for gpu in (first, second):
        assert gpu.ecc is not None and gpu.ecc.enabled is True
        # 555: sram_uncorrectable_parity + sram_uncorrectable_secded, both 0
        assert gpu.ecc.volatile == gpu.ecc.aggregate == EccCounts(0, 0, 0, 0, 0, 0)
        assert gpu.ecc.sram_threshold_exceeded is False
        assert gpu.row_remap == RowRemap(0, 0, pending=False, failure=False)
        assert gpu.retired_pages is None
        assert gpu.clock_events is not None and gpu.clock_events.reasons == ClockReason.GPU_IDLE
        assert gpu.clock_events.counters is None  # no counters before 580
        assert gpu.fabric is None  # state N/A, clusterUuid N/A
        assert gpu.recovery_action is None  # no gpu_recovery_action element in 555
    # T.Limit form, no memory sensor: 45 C + 39 C margin = 84 C; 40 + 43 = 83 C
    assert first.thermal == Thermal(None, shutdown_c=89, slowdown_c=86, gpu_max_c=84)
    assert second.thermal == Thermal(None, shutdown_c=88, slowdown_c=85, gpu_max_c=83)
    assert first.power == Power(draw_w=27.22, limit_w=72.0)  # current_power_limit
    assert second.power == Power(draw_w=29.54, limit_w=72.0)
    assert first.pcie == Pcie(gen=4, max_gen=4, width=16, max_width=16, replays=0)
    assert second.pcie == Pcie(gen=4, max_gen=4, width=1, max_width=16, replays=0)
    assert (first.utilization_pct, second.utilization_pct) == (2, 3)


# One row per <gpu> of the H100 recording, read off its XML: PCI bus (the gpu id
# 00000000:BB:00.0), <gpu_temp>, <gpu_temp_tlimit> (the margin), <memory_temp>,
# <instant_power_draw>, <replay_counter>, <clocks_event_reasons_counters_sw_power_cap>.
# Serial and UUID are upstream's placeholders: 16500000000NN from 01, GPU-000000NN-...
# from 00 (GPU 0's is all zeros).
_H100_GPUS = [
    ("53", 29, 58, 37, 68.92, 150, 7015662857),
    ("64", 30, 56, 39, 67.16, 144, 7015392538),
    ("75", 29, 57, 38, 67.74, 174, 7015478833),
    ("86", 32, 55, 39, 71.77, 158, 7015722115),
    ("97", 32, 55, 37, 66.34, 145, 7015815635),
    ("a8", 29, 58, 37, 68.25, 172, 7015263757),
    ("b9", 31, 56, 37, 70.01, 162, 7015401606),
    ("ca", 29, 57, 38, 68.18, 106, 7014307013),
]


def test_h100_hgx_eight_gpus_on_580() -> None:
    gpus = real(H100)
    assert len(gpus) == len(_H100_GPUS) == 8
    for i, (gpu, row) in enumerate(zip(gpus, _H100_GPUS, strict=True)):
        bus, temp, margin, mem_temp, draw, replays, power_cap_us = row
        assert gpu.identity.index == i and gpu.identity.name == "NVIDIA H100 80GB HBM3"
        assert gpu.identity.pci_bus_id == f"0000:{bus}:00"  # from 00000000:{BUS}:00.0
        assert gpu.identity.serial == f"165000000000{i + 1}"
        assert gpu.identity.uuid == f"GPU-0000000{i}-0000-0000-0000-00000000000{i}"
        assert not gpu.lost and gpu.error is None and gpu.nvlink is None
        assert gpu.ecc is not None and (gpu.ecc.enabled, gpu.ecc.pending_enabled) == (True, True)
        # 580: sram_uncorrectable_parity + _secded, all counts 0, volatile and aggregate
        assert gpu.ecc.volatile == gpu.ecc.aggregate == EccCounts(0, 0, 0, 0, 0, 0)
        assert gpu.ecc.volatile is not None
        assert (gpu.ecc.volatile.corrected, gpu.ecc.volatile.uncorrected) == (0, 0)
        assert gpu.ecc.sram_threshold_exceeded is False  # <sram_threshold_exceeded>No
        assert gpu.row_remap == RowRemap(0, 0, pending=False, failure=False)
        assert gpu.retired_pages is None  # retired_count and pending_retirement N/A
        assert gpu.temperature_c == temp
        # T.Limit form only: shutdown -8 C, slowdown -2 C, max operating 0 C from the
        # limit (temperature + margin = 86 or 87 C); memory "0 C" from a limit the XML
        # does not print, so no memory maximum
        at_limit = temp + margin
        assert gpu.thermal == Thermal(
            memory_c=mem_temp,
            shutdown_c=at_limit + 8,
            slowdown_c=at_limit + 2,
            gpu_max_c=at_limit,
            mem_max_c=None,
        )
        assert gpu.utilization_pct == 0
        assert gpu.clock_events is not None and gpu.clock_events.reasons == ClockReason.GPU_IDLE
        # counters printed in us, as the parser keeps them: about 7015 s of software
        # power cap since the driver loaded, nothing else
        assert gpu.clock_events.counters == ClockCounters(
            sw_power_cap_us=power_cap_us,
            sync_boost_us=0,
            sw_thermal_us=0,
            hw_thermal_us=0,
            hw_power_brake_us=0,
        )
        # no power_draw or enforced_power_limit elements: instant draw, current limit
        assert gpu.power == Power(draw_w=draw, limit_w=700.0)
        assert gpu.pcie == Pcie(gen=5, max_gen=5, width=16, max_width=16, replays=replays)
        # an HGX board outside a multi-node NVLink domain: clique 0, cluster UUID zeros
        assert gpu.fabric == Fabric(
            state=FabricState.COMPLETED, status="success", clique_id=0, cluster_uuid=None
        )
        assert gpu.fabric.healthy
        assert gpu.recovery_action == RecoveryAction.NONE  # <gpu_recovery_action>None
    # the derived limits differ by the 1 C that two integer readings can
    assert [g.thermal.gpu_max_c for g in gpus if g.thermal] == [87, 86, 86, 87, 87, 87, 87, 86]


# --- temperature thresholds -----------------------------------------------------------

# `nvidia-smi -q` labels and their `-q -x` elements (same order in both, see the A100
# 535 and L4 555 fixtures).
_LABELS = {
    "GPU Current Temp": "gpu_temp",
    "GPU T.Limit Temp": "gpu_temp_tlimit",
    "GPU Shutdown T.Limit Temp": "gpu_temp_max_tlimit_threshold",
    "GPU Slowdown T.Limit Temp": "gpu_temp_slow_tlimit_threshold",
    "GPU Max Operating T.Limit Temp": "gpu_temp_max_gpu_tlimit_threshold",
    "GPU Shutdown Temp": "gpu_temp_max_threshold",
    "GPU Slowdown Temp": "gpu_temp_slow_threshold",
    "GPU Max Operating Temp": "gpu_temp_max_gpu_threshold",
    "GPU Target Temperature": "gpu_target_temperature",
    "Memory Current Temp": "memory_temp",
    "Memory Max Operating T.Limit Temp": "gpu_temp_max_mem_tlimit_threshold",
    "Memory Max Operating Temp": "gpu_temp_max_mem_threshold",
}
_TEMPERATURE = re.compile(r"^    Temperature\n((?:        .*\n)+)", re.MULTILINE)


def _temperature_xml(values: dict[str, str]) -> str:
    """One Hopper GPU's ``-q -x`` with this ``<temperature>`` section."""
    body = "".join(f"<{_LABELS[k]}>{v}</{_LABELS[k]}>" for k, v in values.items())
    return (
        '<nvidia_smi_log><gpu id="00000000:19:00.0"><uuid>GPU-x</uuid>'
        f"<product_name>NVIDIA H100 80GB HBM3</product_name><temperature>{body}</temperature>"
        "</gpu></nvidia_smi_log>"
    )


def _recorded(name: str) -> list[dict[str, str]]:
    """The Temperature sections of a recorded ``nvidia-smi -q`` (text fixture)."""
    found = _TEMPERATURE.findall((FIXTURES / name).read_text())
    assert found, name
    return [
        {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in section.splitlines())}
        for section in found
    ]


def _c(text: str) -> int:
    return int(text.removesuffix(" C"))


@pytest.mark.parametrize("name", [H100_TEXT, H200_TEXT])
def test_hopper_memory_limit_is_never_the_gpus_margin(name: str) -> None:
    """Drivers from 535 print the memory's limit only relative to itself ("Memory Max
    Operating T.Limit Temp"); the GPU's T.Limit margin is another sensor's."""
    sections = _recorded(name)
    assert len(sections) == 2  # idle, then under gpu-burn
    for values in sections:
        assert values["Memory Max Operating T.Limit Temp"] == "0 C"
        (gpu,) = parse_smi_xml(_temperature_xml(values))
        at_limit = _c(values["GPU Current Temp"]) + _c(values["GPU T.Limit Temp"])
        assert gpu.thermal == Thermal(
            memory_c=_c(values["Memory Current Temp"]),
            shutdown_c=at_limit + 8,  # -8 C
            slowdown_c=at_limit + 2,  # -2 C
            gpu_max_c=at_limit,  # 0 C
            mem_max_c=None,  # not GPU temperature + GPU margin
        )


def test_a_busy_h100s_memory_at_90_c_is_not_drained() -> None:
    """The recorded busy H100 (59 C, margin 26 C): the old parser made the memory's
    limit 85 C and drained a GPU whose HBM3 ran at 86-95 C."""
    busy = _recorded(H100_TEXT)[1]
    assert (busy["GPU Current Temp"], busy["GPU T.Limit Temp"]) == ("59 C", "26 C")
    (gpu,) = parse_smi_xml(_temperature_xml({**busy, "Memory Current Temp": "90 C"}))
    assert gpu.thermal is not None and gpu.thermal.mem_max_c is None
    snapshot = Snapshot(node="n1", taken_at=datetime(2026, 3, 1, tzinfo=UTC), gpus=(gpu,))
    (result,) = TemperatureCheck().evaluate(snapshot)
    assert result.status is Status.OK, result.summary
    # an operator's fallback for the memory still applies
    (result,) = TemperatureCheck(TemperatureConfig(mem_max_c=85)).evaluate(snapshot)
    assert (result.status, result.action) == (Status.FAIL, Action.DRAIN)


def test_absolute_thresholds_win_over_the_margin() -> None:
    """Hopper on driver 525 printed both (an H800, 525.105.17, SOURCES.md "H100
    thresholds"): 35 C with a 51 C margin, yet a maximum of 87 C; memory 95 C."""
    recorded = {
        "GPU Current Temp": "35 C",
        "GPU T.Limit Temp": "51 C",
        "GPU Shutdown Temp": "92 C",
        "GPU Slowdown Temp": "89 C",
        "GPU Max Operating Temp": "87 C",
        "GPU Target Temperature": "N/A",
        "Memory Current Temp": "44 C",
        "Memory Max Operating Temp": "95 C",
    }
    (gpu,) = parse_smi_xml(_temperature_xml(recorded))
    assert gpu.thermal == Thermal(
        memory_c=44, shutdown_c=92, slowdown_c=89, gpu_max_c=87, mem_max_c=95
    )


# --- identity and fabric --------------------------------------------------------------


@pytest.mark.parametrize("name", [A10G, T4])
def test_a_serial_of_zeros_is_no_serial(name: str) -> None:
    """AWS prints 0000000000000 for every A10G and T4: as a serial it would make one
    GPU of them all, and count any GPU's incident as another's recurrence."""
    assert "<serial>0000000000000</serial>" in (FIXTURES / name).read_text()
    (gpu,) = real(name)
    assert gpu.identity.serial is None and gpu.identity.uuid


def _fabric(cluster_uuid: str, state: str = "Completed") -> str:
    xml = _edit(BLACKWELL, "<state>N/A</state>", f"<state>{state}</state>")
    xml = xml.replace("<status>N/A</status>", "<status>Success</status>", 1)
    xml = xml.replace("<cliqueId>N/A</cliqueId>", "<cliqueId>4026</cliqueId>")
    return xml.replace(
        "<clusterUuid>N/A</clusterUuid>", f"<clusterUuid>{cluster_uuid}</clusterUuid>"
    )


RAW = bytes.fromhex("9c6f5af353bf49b5a436b66766c413c3")


@pytest.mark.parametrize(
    ("printed", "expected"),
    [
        ("9c6f5af3-53bf-49b5-a436-b66766c413c3", str(uuid.UUID(bytes=RAW))),
        ("9C6F5AF3-53BF-49B5-A436-B66766C413C3", str(uuid.UUID(bytes=RAW))),
        (" 9c6f5af353bf49b5a436b66766c413c3 ", str(uuid.UUID(bytes=RAW))),
        ("00000000-0000-0000-0000-000000000000", None),  # H100/H200 on 590: no cluster
        ("N/A", None),
        ("Not Supported", None),
    ],
)
def test_cluster_uuid_is_the_canonical_string_nvml_gives(
    printed: str, expected: str | None
) -> None:
    (gpu,) = parse_smi_xml(_fabric(printed))
    assert gpu.fabric is not None and gpu.fabric.state is FabricState.COMPLETED
    assert gpu.fabric.clique_id == 4026
    assert gpu.fabric.cluster_uuid == expected and gpu.error is None
    if expected is not None:
        assert expected == "9c6f5af3-53bf-49b5-a436-b66766c413c3"


def test_an_unreadable_cluster_uuid_is_an_error_not_a_value() -> None:
    (gpu,) = parse_smi_xml(_fabric("cluster-a"))
    assert gpu.fabric is not None and gpu.fabric.cluster_uuid is None
    assert gpu.error == "fabric/clusterUuid: not a UUID 'cluster-a'"


# --- values edited into real documents ------------------------------------------------


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
    assert gpu.ecc is not None and gpu.ecc.volatile is not None
    assert (gpu.ecc.volatile.corrected, gpu.ecc.volatile.uncorrected) == (7, 1)
    assert gpu.identity.pci_bus_id == "0000:04:00"


@pytest.mark.parametrize("text", ["", "not xml", "<html></html>"])
def test_not_an_nvidia_smi_document_is_a_gpu_error(text: str) -> None:
    with pytest.raises(GpuError, match="nvidia-smi XML"):
        parse_smi_xml(text)
