"""The simulation's health records: H100 SXM defaults, state changes, injections."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpresil.adapters.gpu.records import ClockReason, FabricState
from hpresil.adapters.gpu.simulated import SimulatedBackend, reset_state, set_gpu_state
from hpresil.agent.inject import inject_gpu
from hpresil.config import Config, parse
from hpresil.errors import GpuError, UsageError


@pytest.fixture
def template(tmp_path: Path) -> str:
    return str(tmp_path / "sim" / "{node}.json")


def _cfg(template: str) -> Config:
    return parse({"agent": {"gpu": {"backend": "simulated", "state_file": template}}})


def test_defaults_are_a_healthy_idle_h100_sxm(template: str) -> None:
    gpu = SimulatedBackend(template, "node1").devices()[0]
    assert gpu.ecc is not None and gpu.ecc.enabled and gpu.ecc.aggregate is not None
    assert gpu.row_remap is not None and not (gpu.row_remap.pending or gpu.row_remap.failure)
    assert gpu.retired_pages is None  # Hopper has no page retirement
    assert gpu.thermal is not None and gpu.thermal.gpu_max_c == 87 and gpu.thermal.mem_max_c == 95
    assert gpu.clock_events is not None and gpu.clock_events.reasons == ClockReason.GPU_IDLE
    assert gpu.power is not None and gpu.power.limit_w == 700.0
    assert gpu.pcie is not None and (gpu.pcie.gen, gpu.pcie.width) == (5, 16)
    assert gpu.nvlink is not None and len(gpu.nvlink) == 18 and all(x.active for x in gpu.nvlink)
    assert gpu.fabric is not None and gpu.fabric.state is FabricState.COMPLETED
    assert gpu.fabric.healthy and gpu.recovery_action == 0


def test_new_fields_round_trip_through_the_state_file(template: str) -> None:
    set_gpu_state(
        template,
        "node1",
        2,
        row_remap_pending=True,
        clock_event_reasons=0x48,
        pcie_width=8,
        nvlink_down=[3],
        nvlink_replay={3: 2},
        fabric_state="in_progress",
        recovery_action=2,
        retired_pages_sbe=1,
    )
    set_gpu_state(template, "node1", 2, nvlink_replay={4: 1})  # merged link by link
    gpu = SimulatedBackend(template, "node1").devices()[2]
    assert gpu.row_remap is not None and gpu.row_remap.pending
    assert gpu.clock_events is not None and gpu.clock_events.reasons == 0x48
    assert gpu.pcie is not None and gpu.pcie.width == 8
    assert gpu.nvlink is not None and not gpu.nvlink[3].active
    assert (gpu.nvlink[3].replay, gpu.nvlink[4].replay) == (2, 1)
    assert gpu.fabric is not None and gpu.fabric.state is FabricState.IN_PROGRESS
    assert gpu.recovery_action == 2 and gpu.retired_pages is not None
    reset_state(template, "node1")
    again = SimulatedBackend(template, "node1").devices()[2]
    assert again.nvlink is not None and all(x.active for x in again.nvlink)


def test_unsupported_records_read_as_none(template: str) -> None:
    set_gpu_state(
        template,
        "node1",
        0,
        row_remap_correctable=None,
        nvlink_links=0,
        fabric_state="not_supported",
        recovery_action=None,
        clock_event_reasons=None,
        ecc_enabled=None,
    )
    gpu = SimulatedBackend(template, "node1").devices()[0]
    assert gpu.row_remap is None and gpu.nvlink is None and gpu.fabric is None
    assert gpu.recovery_action is None and gpu.clock_events is None and gpu.ecc is None


def test_bad_values_are_refused(template: str) -> None:
    with pytest.raises(GpuError, match="fabric_state"):
        set_gpu_state(template, "node1", 0, fabric_state="broken")
    with pytest.raises(GpuError, match="pcie_width"):
        set_gpu_state(template, "node1", 0, pcie_width=0)


def test_inject_gpu_health_faults(template: str) -> None:
    cfg = _cfg(template)
    sample = inject_gpu(cfg, "node1", 1, row_remap_failure=True, temperature_c=95)
    assert sample.row_remap is not None and sample.row_remap.failure
    assert sample.temperature_c == 95
    inject_gpu(cfg, "node1", 1, nvlink_down=[0, 17], nvlink_link=6, nvlink_crc_flit=5000)
    inject_gpu(cfg, "node1", 1, pcie_gen=3, utilization_pct=100, recovery_action=4)
    inject_gpu(cfg, "node1", 1, fabric_state="not_started", fabric_status="timeout")
    gpu = SimulatedBackend(template, "node1").devices()[1]
    assert gpu.nvlink is not None and [x.link for x in gpu.nvlink if not x.active] == [0, 17]
    assert gpu.nvlink[6].crc_flit == 5000
    assert gpu.pcie is not None and gpu.pcie.gen == 3 and gpu.utilization_pct == 100
    assert gpu.recovery_action == 4
    assert gpu.fabric is not None and gpu.fabric.status == "timeout"
    inject_gpu(cfg, "node1", 1, nvlink_down=[])
    gpu = SimulatedBackend(template, "node1").devices()[1]
    assert gpu.nvlink is not None and all(x.active for x in gpu.nvlink)


def test_inject_gpu_without_changes_is_a_usage_error(template: str) -> None:
    with pytest.raises(UsageError, match="nothing to inject"):
        inject_gpu(_cfg(template), "node1", 0, nvlink_link=3)
