"""DCGM error categories and severities to hpresil categories and actions."""

from __future__ import annotations

import pytest

from hpresil.dcgm import mapping
from hpresil.dcgm.mapping import ErrorCategory, Severity
from hpresil.vocab import Action, Category, Status


@pytest.mark.parametrize(
    ("code", "category"),
    [
        (9, Category.THERMAL_POWER),
        (10, Category.HBM_ECC),
        (11, Category.NVLINK_NVSWITCH),
        (12, Category.NVLINK_NVSWITCH),
        (13, Category.PCIE_LINK),
        (14, Category.THERMAL_POWER),
        (3, Category.DRIVER_SW),
        (4, Category.DRIVER_SW),
        (8, Category.DRIVER_SW),
        (1, Category.PERF_DEGRADED),
        (15, Category.UNKNOWN),
    ],
)
def test_error_category_decides_the_category(code: int, category: Category) -> None:
    assert mapping.category_for("whatever", "", code) == (category, None)


@pytest.mark.parametrize(
    ("severity", "action"),
    [
        (Severity.ISOLATE, Action.DRAIN_NOW),
        (Severity.RESET, Action.RESET_GPU),
        (Severity.TRIAGE, Action.DRAIN),
        (Severity.MONITOR, Action.WATCH),
        (Severity.CONFIG, Action.WATCH),
    ],
)
def test_severity_decides_the_action(severity: Severity, action: Action) -> None:
    judged = mapping.judge(
        "software", error_category=ErrorCategory.HARDWARE_MEMORY, severity=severity
    )
    assert judged.action is action
    assert judged.category is Category.HBM_ECC


@pytest.mark.parametrize("severity", [None, 0, 3, 99])
@pytest.mark.parametrize(
    ("test", "action", "category"),
    [
        ("memory", Action.DRAIN_NOW, Category.HBM_ECC),
        ("GPU Memory", Action.DRAIN_NOW, Category.HBM_ECC),
        ("pcie", Action.DRAIN_NOW, Category.PCIE_LINK),
        ("PCIe", Action.DRAIN_NOW, Category.PCIE_LINK),
        ("nvbandwidth", Action.DRAIN_NOW, Category.NVLINK_NVSWITCH),
        ("Page Retirement/Row Remap", Action.DRAIN_NOW, Category.HBM_ECC),
        ("targeted_power", Action.DRAIN, Category.THERMAL_POWER),
        ("Targeted Stress", Action.DRAIN, Category.PERF_DEGRADED),
        ("diagnostic", Action.DRAIN, Category.UNKNOWN),
        ("Persistence Mode", Action.WATCH, Category.DRIVER_SW),
        ("software", Action.WATCH, Category.DRIVER_SW),
    ],
)
def test_without_a_usable_severity_the_test_decides(
    severity: int | None, test: str, action: Action, category: Category
) -> None:
    judged = mapping.judge(test, "message", severity=severity)
    assert (judged.action, judged.category) == (action, category)


def test_xid_category_follows_the_xid_table() -> None:
    judged = mapping.judge("diagnostic", "Detected XID 79 for GPU 4", error_category=5)
    assert (judged.xid, judged.category, judged.action.drains) == (79, Category.GPU_LOST_PCIE, True)
    judged = mapping.judge("x", "GPU had an uncontained error (XID 95)", error_category=5)
    assert judged.xid == 95


def test_xid_category_without_a_number_is_unknown() -> None:
    judged = mapping.judge("diagnostic", "an XID happened", error_category=5, severity=2)
    assert (judged.xid, judged.category, judged.action) == (
        None,
        Category.UNKNOWN,
        Action.DRAIN_NOW,
    )


def test_a_warning_never_asks_for_more_than_watch() -> None:
    judged = mapping.judge("memory", severity=Severity.ISOLATE, warn_only=True)
    assert judged.action is Action.WATCH


def test_status_follows_the_action() -> None:
    assert mapping.status_for(Action.DRAIN) is Status.FAIL
    assert mapping.status_for(Action.RESET_GPU) is Status.FAIL
    assert mapping.status_for(Action.WATCH) is Status.WARN
    assert mapping.status_for(Action.NONE) is Status.OK


@pytest.mark.parametrize(
    ("system", "category"),
    [
        ("Memory system", Category.HBM_ECC),
        ("PCIe system", Category.PCIE_LINK),
        ("NVLINK system", Category.NVLINK_NVSWITCH),
        ("NvSwitch F", Category.NVLINK_NVSWITCH),
        ("Thermal system", Category.THERMAL_POWER),
        ("Power system", Category.THERMAL_POWER),
        ("InfoROM system", Category.GPU_FW_GSP),
        ("Driver", Category.DRIVER_SW),
        ("SM system", Category.UNKNOWN),
    ],
)
def test_health_systems(system: str, category: Category) -> None:
    assert mapping.health_category(system) is category


def test_health_actions() -> None:
    assert mapping.health_action(Category.HBM_ECC, failed=True) is Action.DRAIN_NOW
    assert mapping.health_action(Category.PCIE_LINK, failed=True) is Action.DRAIN
    assert mapping.health_action(Category.HBM_ECC, failed=False) is Action.WATCH
