"""DCGM's error categories and severities, and what hpresil does about a finding.

Sources: gpu-health.md s4 (enum values, exit codes, health rules, the NVSentinel
mapping) and s7 (the "DCGM diag" row: exit 205 or a Fail in memory/pcie/NVLink is
drain-now, then the RMA path). The enum values are those of DCGM's
``dcgm_errors.h`` (docs.nvidia.com/datacenter/dcgm/latest/reference/diagnostics/
errors.html).

A finding's severity decides the action when DCGM gives one; its category (else
its test's name) decides the failure category. Without a usable severity the
category decides: memory, PCIe and NVLink failures drain now, software findings
are watched, anything else drains.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType

from hpresil.vocab import Action, Category, Status
from hpresil.vocab.xids import lookup as xid_lookup


class ErrorCategory(IntEnum):
    """``error_category`` of a diagnostic finding (``dcgmErrorCategory_t``)."""

    NONE = 0
    PERF_THRESHOLD = 1
    PERF_VIOLATION = 2
    SOFTWARE_CONFIG = 3
    SOFTWARE_LIBRARY = 4
    SOFTWARE_XID = 5
    SOFTWARE_CUDA = 6
    SOFTWARE_EUD = 7
    SOFTWARE_OTHER = 8
    HARDWARE_THERMAL = 9
    HARDWARE_MEMORY = 10
    HARDWARE_NVLINK = 11
    HARDWARE_NVSWITCH = 12
    HARDWARE_PCIE = 13
    HARDWARE_POWER = 14
    HARDWARE_OTHER = 15
    INTERNAL_OTHER = 16


class Severity(IntEnum):
    """``error_severity`` of a diagnostic finding (``dcgmErrorSeverity_t``)."""

    NONE = 0
    MONITOR = 1
    ISOLATE = 2
    UNKNOWN = 3
    TRIAGE = 4
    CONFIG = 5
    RESET = 6


_EC, _C, _A = ErrorCategory, Category, Action

CATEGORIES: Mapping[ErrorCategory, Category] = MappingProxyType(
    {
        _EC.PERF_THRESHOLD: _C.PERF_DEGRADED,
        _EC.PERF_VIOLATION: _C.PERF_DEGRADED,
        _EC.SOFTWARE_CONFIG: _C.DRIVER_SW,
        _EC.SOFTWARE_LIBRARY: _C.DRIVER_SW,
        _EC.SOFTWARE_CUDA: _C.DRIVER_SW,
        _EC.SOFTWARE_EUD: _C.DRIVER_SW,
        _EC.SOFTWARE_OTHER: _C.DRIVER_SW,
        _EC.HARDWARE_THERMAL: _C.THERMAL_POWER,
        _EC.HARDWARE_MEMORY: _C.HBM_ECC,
        _EC.HARDWARE_NVLINK: _C.NVLINK_NVSWITCH,
        _EC.HARDWARE_NVSWITCH: _C.NVLINK_NVSWITCH,
        _EC.HARDWARE_PCIE: _C.PCIE_LINK,
        _EC.HARDWARE_POWER: _C.THERMAL_POWER,
        _EC.HARDWARE_OTHER: _C.UNKNOWN,
        _EC.INTERNAL_OTHER: _C.DRIVER_SW,
    }
)  # SOFTWARE_XID: the XID named in the message decides (see judge)

SEVERITY_ACTIONS: Mapping[Severity, Action] = MappingProxyType(
    {
        Severity.MONITOR: _A.WATCH,
        Severity.ISOLATE: _A.DRAIN_NOW,  # then the RMA path (evidence "path": "rma")
        Severity.TRIAGE: _A.DRAIN,
        Severity.CONFIG: _A.WATCH,  # persistence mode off and the like: not the hardware
        Severity.RESET: _A.RESET_GPU,
    }
)  # NONE and UNKNOWN: the category decides (see fallback_action)

# Test names of DCGM 2.x-4.x (display and plugin spellings), for findings that carry
# no error_category. Keys are normalised by _norm.
TESTS: Mapping[str, Category] = MappingProxyType(
    {
        "memory": _C.HBM_ECC,
        "gpu memory": _C.HBM_ECC,
        "memtest": _C.HBM_ECC,
        "page retirement/row remap": _C.HBM_ECC,
        "pcie": _C.PCIE_LINK,
        "nvlink": _C.NVLINK_NVSWITCH,
        "nvbandwidth": _C.NVLINK_NVSWITCH,
        "nccl tests": _C.NVLINK_NVSWITCH,
        "targeted power": _C.THERMAL_POWER,
        "pulse test": _C.THERMAL_POWER,
        "memory bandwidth": _C.PERF_DEGRADED,
        "targeted stress": _C.PERF_DEGRADED,
        "sm stress": _C.PERF_DEGRADED,
        "inforom": _C.GPU_FW_GSP,
        "cpu eud test": _C.HOST,
        "cpu eud": _C.HOST,
        **{
            name: _C.DRIVER_SW
            for name in (
                "software",
                "denylist",
                "blacklist",
                "nvml library",
                "cuda main library",
                "cuda toolkit library",
                "permissions and os blocks",
                "persistence mode",
                "environment variables",
                "graphics processes",
                "context create",
            )
        },
    }
)

URGENT = frozenset({_C.HBM_ECC, _C.PCIE_LINK, _C.NVLINK_NVSWITCH})  # gpu-health.md s7
_XID_RE = re.compile(r"\bxid\s*[:#]?\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Judgement:
    category: Category
    action: Action
    xid: int | None = None


def judge(
    test: str,
    message: str = "",
    *,
    error_category: int | None = None,
    severity: int | None = None,
    warn_only: bool = False,
) -> Judgement:
    """What one failed (or, with ``warn_only``, warned) diagnostic finding means."""
    category, xid = category_for(test, message, error_category)
    action = severity_action(severity)
    if action is None:
        action = xid_lookup(xid).action if xid is not None else fallback_action(category)
    if warn_only and action.rank > Action.WATCH.rank:
        action = Action.WATCH
    return Judgement(category, action, xid)


def category_for(
    test: str, message: str = "", error_category: int | None = None
) -> tuple[Category, int | None]:
    """The failure category (and the XID, for DCGM's XID category)."""
    if error_category == ErrorCategory.SOFTWARE_XID:
        found = _XID_RE.search(message)
        if found is None:
            return Category.UNKNOWN, None
        xid = int(found.group(1))
        return xid_lookup(xid).category, xid
    if error_category is not None and error_category in CATEGORIES:
        return CATEGORIES[ErrorCategory(error_category)], None
    return TESTS.get(_norm(test), Category.UNKNOWN), None


def severity_action(severity: int | None) -> Action | None:
    """The action DCGM's severity asks for; None when it names none."""
    if severity is None or severity not in Severity._value2member_map_:
        return None
    return SEVERITY_ACTIONS.get(Severity(severity))


def fallback_action(category: Category) -> Action:
    """The action for a failure that carries no usable severity."""
    if category in URGENT:
        return Action.DRAIN_NOW
    if category is Category.DRIVER_SW:
        return Action.WATCH
    return Action.DRAIN


def status_for(action: Action) -> Status:
    if action.drains:
        return Status.FAIL
    return Status.WARN if action is Action.WATCH else Status.OK


# --- health watches (``dcgmi health -c``) ---

HEALTH_SYSTEMS: Mapping[str, Category] = MappingProxyType(
    {
        "pcie": _C.PCIE_LINK,
        "nvlink": _C.NVLINK_NVSWITCH,
        "nvswitch": _C.NVLINK_NVSWITCH,
        "memory": _C.HBM_ECC,
        "inforom": _C.GPU_FW_GSP,
        "thermal": _C.THERMAL_POWER,
        "power": _C.THERMAL_POWER,
        "driver": _C.DRIVER_SW,
        "connectx": _C.IB_NETWORK,
        "cpu": _C.HOST,
    }
)  # "SM system" (and anything new): UNKNOWN


def health_category(system: str) -> Category:
    """``"Memory system"`` -> HBM_ECC; ``"NvSwitch F"`` -> NVLINK_NVSWITCH."""
    key = _norm(system).removesuffix(" system")
    for prefix, category in HEALTH_SYSTEMS.items():
        if key.startswith(prefix):
            return category
    return Category.UNKNOWN


def health_action(category: Category, failed: bool) -> Action:
    """Warning: watch. Failure: drain, or drain now for memory (volatile DBE, row
    remap failure, retired pages; gpu-health.md s4/s7)."""
    if not failed:
        return Action.WATCH
    return Action.DRAIN_NOW if category is Category.HBM_ECC else Action.DRAIN


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())
