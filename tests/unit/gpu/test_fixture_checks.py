"""All NVML checks together: real recordings, and faults set in the NVML double
travelling the agent's path (pynvml -> NVML backend -> history recorder -> collector ->
checks)."""

from __future__ import annotations

from typing import Any

import pytest

from hpresil.adapters.gpu.history import GpuHistoryRecorder
from hpresil.adapters.gpu.nvml import NvmlBackend
from hpresil.checks.clock_events import ClockEventsCheck
from hpresil.checks.ecc import EccCheck
from hpresil.checks.fabric import FabricCheck
from hpresil.checks.gpu_presence import GpuPresenceCheck
from hpresil.checks.nvlink import NvlinkCheck
from hpresil.checks.pcie import PcieCheck
from hpresil.checks.per_gpu import PerGpuCheck
from hpresil.checks.power import PowerCheck
from hpresil.checks.recovery_action import RecoveryActionCheck
from hpresil.checks.retired_pages import RetiredPagesCheck
from hpresil.checks.row_remap import RowRemapCheck
from hpresil.checks.temperature import TemperatureCheck
from hpresil.config.checks import EccConfig
from hpresil.host.collector import Collector
from hpresil.vocab import Action, Category, Status
from tests.nvmldouble import NvmlDouble
from tests.unit.gpu.samples import A10G, A100, BLACKWELL, H100, L4, T4, real, snap, steady

CHECKS: list[PerGpuCheck] = [
    EccCheck(EccConfig(require_enabled=False)),
    RowRemapCheck(),
    RetiredPagesCheck(),
    TemperatureCheck(),
    ClockEventsCheck(),
    PowerCheck(),
    PcieCheck(),
    NvlinkCheck(),
    FabricCheck(),
    RecoveryActionCheck(),
]


# cloud VMs: x8 (T4, A10G), x1 (L4) of x16. The H100 node fails nothing: Gen5 x16 on
# all eight; its PCIe replay counters (106-174) are totals since the driver loaded and
# are judged as a rate (none over this steady history); its ~7015 s of software power
# cap is a counter, and sw_power_cap is not a reason the clock-events check watches.
NARROW_SLOTS = {T4: {0}, A10G: {0}, L4: {1}, H100: set()}


@pytest.mark.parametrize("name", [A100, T4, BLACKWELL, A10G, L4, H100])
def test_real_recordings_have_no_fault_but_narrow_pcie_slots(name: str) -> None:
    gpus = real(name)
    snapshot = snap(gpus, steady(gpus))
    faults = {
        (c.name, r.gpu.index if r.gpu else None)
        for c in CHECKS
        for r in c.evaluate(snapshot)
        if r.status is Status.FAIL
    }
    assert faults == {("pcie", i) for i in NARROW_SLOTS.get(name, set())}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 5.0
        return self.now


@pytest.mark.parametrize(
    ("fault", "check", "status", "action"),
    [
        ({"row_remap_pending": True}, "row_remap", Status.FAIL, Action.DRAIN),
        ({"row_remap_failure": True}, "row_remap", Status.FAIL, Action.RESET_GPU),
        (
            {"ecc_volatile_uncorrected_dram": 1, "ecc_aggregate_uncorrected_dram": 1},
            "ecc",
            Status.FAIL,
            Action.RESET_GPU,
        ),
        ({"ecc_aggregate_corrected_sram": 20_000}, "ecc", Status.FAIL, Action.DRAIN),
        ({"sram_threshold_exceeded": True}, "ecc", Status.FAIL, Action.DRAIN),
        ({"temperature_c": 88}, "temperature", Status.FAIL, Action.DRAIN),
        ({"clock_event_reasons": 0x48}, "clock_events", Status.FAIL, Action.DRAIN),
        ({"clock_event_reasons": 0x80}, "power", Status.WARN, Action.WATCH),
        ({"pcie_width": 8}, "pcie", Status.FAIL, Action.DRAIN),
        ({"pcie_gen": 3, "utilization_pct": 100}, "pcie", Status.FAIL, Action.DRAIN),
        ({"pcie_replays": 1000}, "pcie", Status.WARN, Action.WATCH),
        (
            {"retired_pages_sbe": 2, "retired_pages_dbe": 0, "retired_pages_pending": True},
            "retired_pages",
            Status.FAIL,
            Action.DRAIN,
        ),
        (
            {"retired_pages_sbe": 60, "retired_pages_dbe": 4, "retired_pages_pending": False},
            "retired_pages",
            Status.FAIL,
            Action.REPLACE,
        ),
        ({"nvlink_down": [11]}, "nvlink", Status.FAIL, Action.DRAIN),
        ({"nvlink_recovery": {2: 1}}, "nvlink", Status.FAIL, Action.DRAIN),
        ({"nvlink_crc_flit": {6: 5000}}, "nvlink", Status.FAIL, Action.DRAIN),
        ({"fabric_state": 2}, "fabric", Status.FAIL, Action.DRAIN),  # in progress
        ({"fabric_status": 999}, "fabric", Status.FAIL, Action.DRAIN),
        ({"recovery_action": 2}, "recovery_action", Status.FAIL, Action.REBOOT),
    ],
)
def test_injected_faults_reach_their_check(
    nvml_double: NvmlDouble, fault: dict[str, Any], check: str, status: Status, action: Action
) -> None:
    backend = NvmlBackend()
    recorder = GpuHistoryRecorder(backend, clock=Clock())
    collector = Collector("n1", recorder, sources=[recorder])
    collector.collect()  # a healthy tick first: counters then grow
    nvml_double.set_gpu(5, **fault)
    for _ in range(6):  # six slow samples in ten minutes: the clock-event rate limit
        snapshot = collector.collect()
    results = {c.name: c.evaluate(snapshot) for c in CHECKS}
    hit = results[check][5]
    assert (hit.status, hit.action) == (status, action), hit.summary
    assert hit.gpu is not None and hit.gpu.index == 5
    others = [r for rs in results.values() for r in rs if r.gpu and r.gpu.index != 5]
    assert {r.status for r in others} <= {Status.OK, Status.UNSUPPORTED}
    backend.close()


@pytest.mark.parametrize(
    "fault", [{"lost": True}, {"present": False}], ids=["fallen-off-the-bus", "not-enumerated"]
)
def test_a_lost_or_missing_gpu_reaches_gpu_presence(
    nvml_double: NvmlDouble, fault: dict[str, Any]
) -> None:
    backend = NvmlBackend()
    collector = Collector("n1", backend, expected_gpus=8)
    nvml_double.set_gpu(5, **fault)
    results = GpuPresenceCheck().evaluate(collector.collect())
    backend.close()
    failed = [r for r in results if r.status is Status.FAIL]
    assert failed and all(r.action is Action.REBOOT for r in failed), results
    assert all(r.category is Category.GPU_LOST_PCIE for r in failed)
