"""Site overrides of the XID table and the count-in-window escalation (XidHistory)."""

from __future__ import annotations

import tomllib
from datetime import timedelta

import pytest
from pydantic import ValidationError

from hpresil.checks.xid import XidCheck, XidHistory, judge
from hpresil.config.xid import XidOverride, XidPolicyConfig
from hpresil.vocab import Action, Category, CheckResult, Status, XidEvent
from tests.unit.checks.builders import AT, snapshot, xid

# The shape documented in hpresil/config/xid.py, as the lead's [xid] section.
TOML = """
[xid.overrides.63]
count = 3
window_s = 86400
then = "drain"

[xid.overrides.94]
action = "drain"
category = "hbm_ecc"

[xid.sxid_overrides.20034]
action = "drain_now"
"""


def _policy(text: str = TOML) -> XidPolicyConfig:
    return XidPolicyConfig.model_validate(tomllib.loads(text)["xid"])


def _at(event: XidEvent, hours: float = 0.0, bdf: str | None = None) -> XidEvent:
    update: dict[str, object] = {"seen_at": AT + timedelta(hours=hours)}
    if bdf is not None:
        update["pci_bus_id"] = bdf
    return event.model_copy(update=update)


def _judged(check: XidCheck, event: XidEvent) -> CheckResult:
    (result,) = [r for r in check.evaluate(snapshot(events=(event,))) if r.xid is not None]
    return result


def test_the_documented_toml_shape_loads() -> None:
    policy = _policy()
    assert policy.overrides[63] == XidOverride(count=3, window_s=86400, then=Action.DRAIN)
    assert policy.overrides[94] == XidOverride(action=Action.DRAIN, category=Category.HBM_ECC)
    assert policy.sxid_overrides[20034].action is Action.DRAIN_NOW
    assert policy.longest_window_s == 86400
    assert XidPolicyConfig().longest_window_s == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[xid.overrides.13]\naction = "drain"', "XID 13 is an application error"),
        (
            '[xid.overrides.45]\ncount = 3\nwindow_s = 60\nthen = "reboot"',
            "XID 45 is an application error",
        ),
        ("[xid.overrides.63]\ncount = 3", "count, window_s and then go together"),
        ('[xid.overrides.63]\naction = "explode"', "action"),
        ('[xid.overrides.63]\nactoin = "drain"', "actoin"),
        ("[xid.overrides.63]\ncount = 0\nwindow_s = 1\nthen = 'drain'", "count"),
        ("[xid.overrides.63]\ncount = 2\nwindow_s = 0\nthen = 'drain'", "window_s"),
        ('[xid.overrides.x]\naction = "drain"', "overrides.x"),
        ("[xid]\nescalate = true", "escalate"),
    ],
)
def test_bad_overrides_are_refused_with_the_key(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _policy(text)


def test_application_xids_may_still_be_watched() -> None:
    policy = _policy('[xid.overrides.13]\ncount = 3\nwindow_s = 86400\nthen = "watch"')
    check = XidCheck(policy)
    results = [_judged(check, _at(xid(13), hours=h)) for h in (0, 1, 2)]
    assert [r.action for r in results] == [Action.NONE, Action.NONE, Action.WATCH]


def test_an_override_replaces_action_and_category() -> None:
    result = _judged(XidCheck(_policy()), xid(94))
    assert (result.status, result.action, result.category) == (
        Status.FAIL,
        Action.DRAIN,
        Category.HBM_ECC,
    )
    assert result.evidence["why"] == "table: watch; site override: drain"


def test_xid_63_escalates_on_the_third_within_the_window_on_one_gpu() -> None:
    check = XidCheck(_policy())
    hours = [0, 5, 23]
    actions = [_judged(check, _at(xid(63), hours=h)).action for h in hours]
    assert actions == [Action.WATCH, Action.WATCH, Action.DRAIN]
    last = _judged(check, _at(xid(63), hours=23.5))
    assert last.status is Status.FAIL
    assert "4 times within 86400 s (site escalation at 3): drain" in last.evidence["why"]


def test_occurrences_outside_the_window_or_on_another_gpu_do_not_count() -> None:
    check = XidCheck(_policy())
    assert _judged(check, _at(xid(63), hours=0)).action is Action.WATCH
    assert _judged(check, _at(xid(63), hours=1, bdf="0000:18:00")).action is Action.WATCH
    assert _judged(check, _at(xid(63), hours=25)).action is Action.WATCH  # first one expired
    assert _judged(check, _at(xid(63), hours=26)).action is Action.WATCH  # 2 on 0000:5d:00
    assert _judged(check, _at(xid(63), hours=27)).action is Action.DRAIN  # 3 within 24 h


def test_the_same_event_judged_twice_counts_once() -> None:
    """A tick that fails is retried with the same events: no false escalation."""
    check = XidCheck(_policy())
    event = xid(63)
    results = [_judged(check, event) for _ in range(5)]
    assert {r.action for r in results} == {Action.WATCH}


def test_escalation_never_lowers_an_action() -> None:
    policy = _policy('[xid.overrides.79]\ncount = 1\nwindow_s = 60\nthen = "watch"')
    assert _judged(XidCheck(policy), xid(79)).action is Action.REBOOT


def test_sxid_overrides_apply_to_sxids_only() -> None:
    policy = _policy()
    sxid = XidEvent(
        kind="sxid",
        xid=20034,
        pci_bus_id="0000:06:00",
        switch=1,
        fatal=True,
        message="Fatal, Link 48 LTSSM Fault Up",
        seen_at=AT,
    )
    assert judge(sxid, policy, XidHistory()).action is Action.DRAIN_NOW
    same_number_xid = xid(20034)
    assert judge(same_number_xid, policy, XidHistory()).action is Action.WATCH


def test_an_sxid_recurring_on_one_switch_escalates() -> None:
    policy = _policy('[xid.sxid_overrides.12028]\ncount = 2\nwindow_s = 3600\nthen = "drain"')
    history = XidHistory(keep_s=3600)
    base = XidEvent(
        kind="sxid",
        xid=12028,
        pci_bus_id="0000:05:00",
        switch=3,
        fatal=False,
        raw="nvidia-nvswitch3: SXid (PCI:0000:05:00.0): 12028, Non-fatal, Link 32 ...",
        seen_at=AT,
    )
    first = judge(base, policy, history)
    second = judge(_at(base, hours=0.5), policy, history)
    assert (first.action, second.action) == (Action.WATCH, Action.DRAIN)
    assert first.category is Category.NVLINK_NVSWITCH


def test_history_counts_on_the_events_own_timestamps() -> None:
    history = XidHistory(keep_s=3600)
    counts = []
    for hours in (0, 0.25, 0.5, 2):
        event = _at(xid(63), hours=hours)
        history.record(event)
        counts.append((history.count(event, 3600), history.count(event, 60)))
    assert counts == [(1, 1), (2, 1), (3, 1), (1, 1)]  # at 2 h the first three are gone


def test_history_is_bounded_per_gpu_and_xid() -> None:
    history = XidHistory(keep_s=86400, max_per_key=10)
    for minute in range(50):
        history.record(_at(xid(13), hours=minute / 60))
    assert history.count(_at(xid(13), hours=49 / 60), 86400) == 10


def test_the_check_keeps_enough_history_for_the_longest_window() -> None:
    check = XidCheck(_policy('[xid.overrides.63]\ncount = 2\nwindow_s = 604800\nthen = "drain"'))
    assert _judged(check, _at(xid(63), hours=0)).action is Action.WATCH
    assert _judged(check, _at(xid(63), hours=24 * 6)).action is Action.DRAIN
