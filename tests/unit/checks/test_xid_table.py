"""The XID table: every XID of the reference's section 2 with section 7's action."""

from __future__ import annotations

import pytest

from hpresil.vocab import Action, Category
from hpresil.vocab.xids import APPLICATION_XIDS, RECOVERY_ACTIONS, XID_TABLE, lookup, lookup_sxid

# Every XID row of /work/shared/reference/gpu-health.md section 2.
REFERENCE_XIDS = {
    13, 31, 32, 38, 43, 44, 45, 46, 48, 61, 62, 63, 64, 68, 69, 74, 79, 92, 94, 95, 109,
    110, 119, 120, 121, 136, 137, 140, 143, *range(144, 151), 154, 155, 156, 158,
}  # fmt: skip


def test_every_reference_row_is_in_the_table() -> None:
    assert set(XID_TABLE) == REFERENCE_XIDS


@pytest.mark.parametrize(
    ("xid", "action", "category"),
    [
        (79, Action.REBOOT, Category.GPU_LOST_PCIE),
        (48, Action.RESET_GPU, Category.HBM_ECC),
        (95, Action.REBOOT, Category.HBM_ECC),
        (64, Action.RESET_GPU, Category.HBM_ECC),
        (74, Action.RESET_GPU, Category.NVLINK_NVSWITCH),
        (154, Action.WATCH, Category.UNKNOWN),
    ],
)
def test_fault_rows(xid: int, action: Action, category: Category) -> None:
    entry = lookup(xid)
    assert (entry.action, entry.category) == (action, category)


@pytest.mark.parametrize("xid", [63, 92, 94])
def test_hbm_watch_rows(xid: int) -> None:
    assert (lookup(xid).action, lookup(xid).category) == (Action.WATCH, Category.HBM_ECC)


@pytest.mark.parametrize("xid", [13, 31, 43, 45, 68])
def test_application_rows_never_drain(xid: int) -> None:
    assert (lookup(xid).action, lookup(xid).category) == (Action.NONE, Category.APP)


@pytest.mark.parametrize("xid", [32, 38, 44, 69])
def test_driver_rows_are_watched(xid: int) -> None:
    assert (lookup(xid).action, lookup(xid).category) == (Action.WATCH, Category.DRIVER_SW)


@pytest.mark.parametrize("xid", [46, 62, 110, 119, 120, 136, 143, 155, 156, 158])
def test_reset_rows(xid: int) -> None:
    assert lookup(xid).action is Action.RESET_GPU


def test_unknown_xid_is_watched_as_unknown() -> None:
    entry = lookup(4242)
    assert (entry.xid, entry.action, entry.category) == (4242, Action.WATCH, Category.UNKNOWN)


def test_64_notes_the_rma_path() -> None:
    assert "RMA" in lookup(64).source


def test_application_xids_are_the_app_rows_and_none_drains() -> None:
    assert {13, 31, 43, 45, 68} == APPLICATION_XIDS
    assert not any(lookup(x).action.drains for x in APPLICATION_XIDS)


@pytest.mark.parametrize(
    ("value", "action"),
    [
        (0, Action.NONE),
        (1, Action.RESET_GPU),
        (2, Action.REBOOT),
        (3, Action.DRAIN),
        (4, Action.RESET_GPU),
    ],
)
def test_recovery_actions_of_xid_154(value: int, action: Action) -> None:
    assert RECOVERY_ACTIONS[value][1] is action


@pytest.mark.parametrize(
    ("fatal", "action"), [(True, Action.DRAIN), (False, Action.WATCH), (None, Action.WATCH)]
)
def test_sxids_drain_only_when_fatal(fatal: bool | None, action: Action) -> None:
    entry = lookup_sxid(20034, fatal)
    assert (entry.xid, entry.action, entry.category) == (20034, action, Category.NVLINK_NVSWITCH)


@pytest.mark.parametrize("xid", range(144, 151))
def test_nvlink5_rows_are_watched_when_nonfatal(xid: int) -> None:
    assert (lookup(xid).action, lookup(xid).if_nonfatal) == (Action.RESET_GPU, Action.WATCH)
