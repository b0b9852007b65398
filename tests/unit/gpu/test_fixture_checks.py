"""All NVML checks together: real recordings, and faults injected into the simulation
travelling the agent's path (simulated backend -> history recorder -> collector ->
checks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hpresil.adapters.gpu.history import GpuHistoryRecorder
from hpresil.adapters.gpu.simulated import SimulatedBackend
from hpresil.agent.inject import inject_gpu
from hpresil.agent.snapshot import Collector
from hpresil.checks.clock_events import ClockEventsCheck
from hpresil.checks.ecc import EccCheck, EccConfig
from hpresil.checks.fabric import FabricCheck
from hpresil.checks.nvlink import NvlinkCheck
from hpresil.checks.pcie import PcieCheck
from hpresil.checks.per_gpu import PerGpuCheck
from hpresil.checks.power import PowerCheck
from hpresil.checks.recovery_action import RecoveryActionCheck
from hpresil.checks.retired_pages import RetiredPagesCheck
from hpresil.checks.row_remap import RowRemapCheck
from hpresil.checks.temperature import TemperatureCheck
from hpresil.config import parse
from hpresil.vocab import Action, Status
from tests.unit.gpu.samples import A100, BLACKWELL, T4, real, snap, steady

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


@pytest.mark.parametrize("name", [A100, T4, BLACKWELL])
def test_real_recordings_have_no_fault_but_the_t4s_narrow_slot(name: str) -> None:
    gpus = real(name)
    snapshot = snap(gpus, steady(gpus))
    faults = {c.name for c in CHECKS for r in c.evaluate(snapshot) if r.status is Status.FAIL}
    assert faults == ({"pcie"} if name == T4 else set())


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
        ({"ecc_uncorrected": 1}, "ecc", Status.FAIL, Action.RESET_GPU),
        ({"ecc_sram_corrected_aggregate": 20_000}, "ecc", Status.FAIL, Action.DRAIN),
        ({"temperature_c": 88}, "temperature", Status.FAIL, Action.DRAIN),
        ({"clock_event_reasons": 0x48}, "clock_events", Status.FAIL, Action.DRAIN),
        ({"clock_event_reasons": 0x80}, "power", Status.WARN, Action.WATCH),
        ({"pcie_width": 8}, "pcie", Status.FAIL, Action.DRAIN),
        ({"nvlink_down": [11]}, "nvlink", Status.FAIL, Action.DRAIN),
        ({"nvlink_link": 2, "nvlink_recovery": 1}, "nvlink", Status.FAIL, Action.DRAIN),
        ({"fabric_state": "in_progress"}, "fabric", Status.FAIL, Action.DRAIN),
        ({"recovery_action": 2}, "recovery_action", Status.FAIL, Action.REBOOT),
    ],
)
def test_injected_faults_reach_their_check(
    tmp_path: Path, fault: dict[str, Any], check: str, status: Status, action: Action
) -> None:
    cfg = parse({"agent": {"gpu": {"backend": "simulated", "state_file": str(tmp_path / "s")}}})
    recorder = GpuHistoryRecorder(SimulatedBackend(cfg.agent.gpu.state_file, "n1"), clock=Clock())
    collector = Collector("n1", recorder, sources=[recorder])
    collector.collect()  # a healthy tick first: counters then grow
    inject_gpu(cfg, "n1", 5, **fault)
    for _ in range(6):  # six slow samples in ten minutes: the clock-event rate limit
        snapshot = collector.collect()
    results = {c.name: c.evaluate(snapshot) for c in CHECKS}
    hit = results[check][5]
    assert (hit.status, hit.action) == (status, action), hit.summary
    assert hit.gpu is not None and hit.gpu.index == 5
    others = [r for rs in results.values() for r in rs if r.gpu and r.gpu.index != 5]
    assert {r.status for r in others} <= {Status.OK, Status.UNSUPPORTED}
