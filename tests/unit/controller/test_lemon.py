"""The lemon rule, as the policy judges it: the ``replace_after``-th hardware strike
on one GPU or one node within the window is answered with replace."""

from __future__ import annotations

import pytest

from hpresil.config import PolicyConfig
from hpresil.controller.policy import (
    History,
    RecurrenceKey,
    Strikes,
    decide,
    gpu_key,
    ordinal,
)
from hpresil.vocab import Action, Category, CheckResult, GpuIdentity, Status
from tests.unit.controller.fakes import gpu, result, xid79

CFG = PolicyConfig()  # replace_after = 3, a 30-day window
SERIAL3 = "1650000003"  # gpu(3)'s


def ecc(index: int | None = 3, action: Action = Action.DRAIN) -> CheckResult:
    return result(Status.FAIL, action, Category.HBM_ECC, index=index)


def on_gpu(count: int, index: int = 3, node: int = 0) -> History:
    """``count`` earlier strikes on GPU ``index`` (and ``node`` more elsewhere on the node)."""
    key = gpu_key("node1", gpu(index))
    return History(strikes=Strikes(node=count + node, gpus={key: count}))


def test_the_third_strike_on_a_gpu_is_replaced_whatever_its_category() -> None:
    d = decide([ecc()], None, CFG, on_gpu(2), "node1")
    assert d.action is Action.REPLACE and d.drain and d.requeue
    assert f"lemon: 3rd hardware fault on GPU serial {SERIAL3} in 30 days: replace" in d.why
    assert d.identity is not None and "lemon" in d.identity.summary  # the incident says it


def test_the_second_strike_changes_nothing() -> None:
    d = decide([ecc()], None, CFG, on_gpu(1), "node1")
    assert d.action is Action.DRAIN and "lemon" not in d.why


def test_the_third_strike_on_a_node_is_replaced_whatever_its_gpu() -> None:
    d = decide([ecc(index=5)], None, CFG, on_gpu(1, index=3, node=1), "node1")
    assert d.action is Action.REPLACE
    assert "lemon: 3rd hardware fault on node node1 in 30 days: replace" in d.why
    without_gpu = decide([ecc(index=None)], None, CFG, on_gpu(1, node=1), "node1")
    assert without_gpu.action is Action.REPLACE and "on node node1" in without_gpu.why


def test_the_gpu_is_named_before_the_node() -> None:
    d = decide([ecc()], None, CFG, on_gpu(4, node=2), "node1")
    assert f"5th hardware fault on GPU serial {SERIAL3}" in d.why


def test_a_gpu_without_serial_is_named_by_uuid_else_by_node_and_index() -> None:
    bare = GpuIdentity(index=2, uuid="GPU-abc")
    fault = result(Status.FAIL, Action.DRAIN, Category.HBM_ECC).model_copy(update={"gpu": bare})
    history = History(strikes=Strikes(node=2, gpus={"GPU-abc": 2}))
    assert "on GPU uuid GPU-abc in" in decide([fault], None, CFG, history, "node1").why
    anon = fault.model_copy(update={"gpu": GpuIdentity(index=2)})
    history = History(strikes=Strikes(node=2, gpus={"node1/gpu2": 2}))
    assert "on GPU 2 of node1 in" in decide([anon], None, CFG, history, "node1").why


def test_a_struck_gpu_names_the_incident_before_its_node() -> None:
    """GPU 3's third strike is the node's too: the incident is GPU 3's, and GPU 5's
    fault keeps its own action."""
    d = decide([ecc(index=5), ecc(index=3)], None, CFG, on_gpu(2), "node1")
    assert d.action is Action.REPLACE
    assert d.identity is not None and d.identity.gpu is not None
    assert d.identity.gpu.index == 3 and "(+1 more)" in d.why
    assert f"on GPU serial {SERIAL3}" in d.why


def test_application_faults_are_never_lemons() -> None:
    app = result(Status.FAIL, Action.DRAIN, Category.APP, check="xid", index=3)
    d = decide([app], None, CFG, on_gpu(9), "node1")
    assert d.action is Action.DRAIN and not d.drain and "lemon" not in d.why


def test_a_fault_already_answered_with_replace_gets_no_note() -> None:
    d = decide([ecc(action=Action.REPLACE)], None, CFG, on_gpu(5), "node1")
    assert d.action is Action.REPLACE and "lemon" not in d.why


def test_escalation_and_the_lemon_rule_meet() -> None:
    """A second XID 79 climbs to replace on its own: no lemon note on top."""
    fault = xid79()
    history = History(
        recurrences={(Category.GPU_LOST_PCIE, SERIAL3): 1},
        strikes=Strikes(node=2, gpus={SERIAL3: 2}),
    )
    d = decide([fault], None, CFG, history, "node1")
    assert d.action is Action.REPLACE
    assert "reboot -> replace" in d.why and "lemon" not in d.why


@pytest.mark.parametrize(
    ("cfg", "history"),
    [
        (PolicyConfig(replace_after=0), on_gpu(5)),  # off
        (CFG, History()),  # not weighed (a shared component's incident)
        (CFG, {(Category.HBM_ECC, SERIAL3): 5}),  # counts for escalation only
    ],
)
def test_no_lemon_when_off_or_not_counted(
    cfg: PolicyConfig, history: History | dict[RecurrenceKey, int]
) -> None:
    d = decide([ecc()], None, cfg, history, "node1")
    assert d.action is Action.DRAIN


def test_replace_after_one_replaces_every_hardware_fault() -> None:
    d = decide([ecc()], None, PolicyConfig(replace_after=1), History(strikes=Strikes()), "node1")
    assert d.action is Action.REPLACE
    assert f"1st hardware fault on GPU serial {SERIAL3} in 30 days" in d.why


def test_the_window_is_named_as_configured() -> None:
    cfg = PolicyConfig(recurrence_window_days=1)
    assert "in 1 day: replace" in decide([ecc()], None, cfg, on_gpu(2), "node1").why
    cfg = PolicyConfig(recurrence_window_days=7.5)
    assert "in 7.5 days: replace" in decide([ecc()], None, cfg, on_gpu(2), "node1").why


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (1, "1st"),
        (2, "2nd"),
        (3, "3rd"),
        (4, "4th"),
        (11, "11th"),
        (12, "12th"),
        (13, "13th"),
        (21, "21st"),
        (22, "22nd"),
        (101, "101st"),
        (111, "111th"),
    ],
)
def test_ordinal(n: int, text: str) -> None:
    assert ordinal(n) == text


def test_replace_after_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="replace_after"):
        PolicyConfig(replace_after=-1)
