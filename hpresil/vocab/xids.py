"""The XID table, as data: what each NVIDIA XID (and NVSwitch SXid) means and what
hpresil does about it.

Source: /work/shared/reference/gpu-health.md section 2 (meanings, compiled from
NVIDIA's Xid catalog docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html,
NVSentinel's xiderrorsmapping.csv and leptonai/gpud) with the actions and categories
of section 7 (hpresil's severity policy, a proposal). NVIDIA's escalation ladder
(reset GPU -> restart OS -> service) and "on repeat" rules belong to the controller's
remediation policy; this table gives the first action only.

An XID not listed here is WATCH / UNKNOWN: recorded, never drained on. The NVLink5
XIDs 144-150 say "Fatal" or "Nonfatal" in their text: a non-fatal one is only
watched. NVSwitch SXids (section 7: "SXid fatal -> drain -> restart fabric manager /
reboot") drain when fatal and are watched otherwise. XID 154 follows the recovery
action it announces (:data:`RECOVERY_ACTIONS`). Application-class XIDs
(:data:`APPLICATION_XIDS`: 13, 31, 43, 45, 68) never drain a node by themselves,
and no site override may make them.

Site overrides are :class:`hpresil.config.xid.XidPolicyConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from hpresil.vocab import Action, Category

_REF = "gpu-health.md s2/s7"


@dataclass(frozen=True)
class XidEntry:
    xid: int
    name: str
    category: Category
    action: Action
    source: str = _REF  # where the meaning and the action come from
    if_nonfatal: Action | None = None  # the action when the line says "Nonfatal"


def _e(
    xid: int,
    name: str,
    category: Category,
    action: Action,
    note: str = "",
    if_nonfatal: Action | None = None,
) -> XidEntry:
    return XidEntry(xid, name, category, action, f"{_REF}; {note}" if note else _REF, if_nonfatal)


_A, _C = Action, Category

ENTRIES: tuple[XidEntry, ...] = (
    _e(13, "Graphics engine exception", _C.APP, _A.NONE, "mostly the application"),
    _e(31, "GPU memory page fault", _C.APP, _A.NONE, "mostly the application"),
    _e(32, "Corrupted push buffer", _C.DRIVER_SW, _A.WATCH, "drain on repeat"),
    _e(38, "FECS watchdog timeout", _C.DRIVER_SW, _A.WATCH),
    _e(43, "GPU stopped processing", _C.APP, _A.NONE),
    _e(44, "GR fault during context switch", _C.DRIVER_SW, _A.WATCH, "reboot on repeat"),
    _e(
        45,
        "Preemptive cleanup after an earlier error",
        _C.APP,
        _A.NONE,
        "category follows the root XID named in the line; never drains by itself",
    ),
    _e(46, "GPU timeout", _C.GPU_HANG, _A.RESET_GPU),
    _e(48, "Double-bit ECC error", _C.HBM_ECC, _A.RESET_GPU, "then field diag"),
    _e(61, "PMU breakpoint", _C.GPU_FW_GSP, _A.REBOOT, "NVIDIA: contact support"),
    _e(62, "PMU halt", _C.GPU_FW_GSP, _A.RESET_GPU, "RMA on repeat"),
    _e(63, "Row remap / page retirement recorded", _C.HBM_ECC, _A.WATCH, "reset when idle"),
    _e(
        64,
        "Row remap / page retirement recording failure",
        _C.HBM_ECC,
        _A.RESET_GPU,
        "then field diag; RMA path (replace) if it recurs",
    ),
    _e(68, "NVDEC0 exception", _C.APP, _A.NONE),
    _e(69, "GR class error", _C.DRIVER_SW, _A.WATCH, "drain on repeat"),
    _e(74, "NVLink error", _C.NVLINK_NVSWITCH, _A.RESET_GPU, "RMA/reseat if the same link"),
    _e(79, "GPU has fallen off the bus", _C.GPU_LOST_PCIE, _A.REBOOT, "RMA on repeat"),
    _e(92, "High single-bit ECC error rate", _C.HBM_ECC, _A.WATCH),
    _e(94, "Contained ECC error", _C.HBM_ECC, _A.WATCH, "count; reset at next window"),
    _e(95, "Uncontained ECC error", _C.HBM_ECC, _A.REBOOT),
    _e(109, "Context-switch timeout", _C.GPU_HANG, _A.WATCH, "reset on repeat"),
    _e(110, "Security fault", _C.GPU_FW_GSP, _A.RESET_GPU),
    _e(119, "GSP RPC timeout", _C.GPU_FW_GSP, _A.RESET_GPU, "reboot if reset fails"),
    _e(120, "GSP error", _C.GPU_FW_GSP, _A.RESET_GPU, "reboot if reset fails"),
    _e(121, "C2C link error (Grace)", _C.NVLINK_NVSWITCH, _A.WATCH),
    _e(136, "ALI link training failed", _C.NVLINK_NVSWITCH, _A.RESET_GPU),
    _e(137, "NVLink FLA privilege error", _C.NVLINK_NVSWITCH, _A.WATCH),
    _e(140, "Unrecovered ECC escape", _C.HBM_ECC, _A.RESET_GPU, "RMA on repeat"),
    _e(143, "GPU initialization error", _C.GPU_FW_GSP, _A.RESET_GPU, "RMA if reset fails"),
    *(
        _e(
            x,
            "NVLink5 error (Blackwell)",
            _C.NVLINK_NVSWITCH,
            _A.RESET_GPU,
            "fatal ones; watch a Nonfatal one",
            if_nonfatal=_A.WATCH,
        )
        for x in range(144, 151)
    ),
    _e(
        154,
        "GPU recovery action changed",
        _C.UNKNOWN,
        _A.WATCH,
        "follows the new value (RECOVERY_ACTIONS); category of the XID it follows",
    ),
    _e(155, "NVLink software-defined error", _C.NVLINK_NVSWITCH, _A.RESET_GPU),
    _e(156, "Resource retirement event", _C.GPU_FW_GSP, _A.RESET_GPU),
    _e(158, "GPU fatal timeout", _C.GPU_HANG, _A.RESET_GPU),
)

XID_TABLE: Mapping[int, XidEntry] = MappingProxyType({e.xid: e for e in ENTRIES})
assert len(XID_TABLE) == len(ENTRIES), "duplicate XID in the table"


def lookup(xid: int) -> XidEntry:
    """The entry for ``xid``; WATCH / UNKNOWN when the table does not know it."""
    entry = XID_TABLE.get(xid)
    if entry is not None:
        return entry
    return XidEntry(xid, f"XID {xid} (not in hpresil's table)", Category.UNKNOWN, Action.WATCH)


# XID 154's values (NVIDIA Xid catalog; NVML field 230): the driver's name and the
# action hpresil takes. "Drain and Reset" needs the GPU reset after the drain.
RECOVERY_ACTIONS: Mapping[int, tuple[str, Action]] = MappingProxyType(
    {
        0: ("None", Action.NONE),
        1: ("GPU Reset Required", Action.RESET_GPU),
        2: ("Node Reboot Required", Action.REBOOT),
        3: ("Drain P2P", Action.DRAIN),
        4: ("Drain and Reset", Action.RESET_GPU),
    }
)

APPLICATION_XIDS = frozenset(e.xid for e in ENTRIES if e.category is Category.APP)

_SXID_REF = "gpu-health.md s7 (SXid fatal -> drain -> restart fabric manager / reboot)"
SXID_FATAL = XidEntry(0, "NVSwitch fatal error", Category.NVLINK_NVSWITCH, Action.DRAIN, _SXID_REF)
SXID_NONFATAL = XidEntry(
    0, "NVSwitch non-fatal error", Category.NVLINK_NVSWITCH, Action.WATCH, _SXID_REF
)


def lookup_sxid(sxid: int, fatal: bool | None) -> XidEntry:
    """The entry for an NVSwitch SXid: drain when the line says Fatal, else watch."""
    return replace(SXID_FATAL if fatal else SXID_NONFATAL, xid=sxid)
