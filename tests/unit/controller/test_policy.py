"""The pure policy: which results open incidents, drain, requeue; and the why."""

from __future__ import annotations

from hpresil.config import PolicyConfig
from hpresil.controller.policy import NOTHING, OpenIncident, decide, drain_reason
from hpresil.vocab import Action, Category, CheckResult, Status
from tests.unit.controller.fakes import result, xid79

CFG = PolicyConfig()


def hbm(action: Action = Action.DRAIN) -> CheckResult:
    return result(Status.FAIL, action, Category.HBM_ECC, check="ecc", xid=48)


def test_no_fault_no_decision() -> None:
    quiet = [
        result(),
        result(Status.WARN, Action.WATCH),
        result(Status.FAIL, Action.WATCH, Category.PERF_DEGRADED),  # FAIL that does not drain
        result(Status.UNKNOWN, Action.DRAIN),
    ]
    assert decide(quiet, None, CFG) == NOTHING


def test_a_reboot_fault_opens_drains_and_requeues() -> None:
    d = decide([result(), xid79()], None, CFG)
    assert (d.findings, d.incident, d.action, d.drain, d.requeue) == (
        1,
        None,
        Action.REBOOT,
        True,
        True,
    )
    assert d.identity is not None and d.identity.category is Category.GPU_LOST_PCIE
    assert d.identity.xid == 79 and d.identity.gpu is not None and d.identity.gpu.index == 3
    assert d.why == (
        "XID 79 GPU has fallen off the bus on GPU 3 (0000:5d:00); "
        "policy: reboot ⇒ drain now and requeue jobs"
    )


def test_requeue_can_be_turned_off() -> None:
    d = decide([xid79()], None, PolicyConfig(requeue_jobs=False))
    assert d.drain and not d.requeue
    assert d.why.endswith("drain now; jobs not requeued (policy.requeue_jobs is off)")


def test_the_most_severe_fault_gives_the_identity() -> None:
    d = decide([hbm(), xid79(index=5)], None, CFG)
    assert d.findings == 2 and d.identity is not None and d.identity.xid == 79
    assert "(+1 more)" in d.why


def test_later_faults_attach_without_a_second_drain() -> None:
    current = OpenIncident(1, Category.HBM_ECC, Action.DRAIN, True, drain_queued=True)
    d = decide([hbm()], current, CFG)
    assert (d.incident, d.identity, d.drain, d.findings) == (1, None, False, 1)
    assert d.why.endswith("drain already done or queued for incident #1")


def test_escalation_to_requeue_drains_again() -> None:
    current = OpenIncident(1, Category.HBM_ECC, Action.DRAIN, True, drain_queued=True)
    d = decide([xid79()], current, CFG)
    assert d.identity is None  # the first fault's identity stays
    assert (d.action, d.drain, d.requeue) == (Action.REBOOT, True, True)


def test_a_failed_drain_is_tried_again_on_the_next_fault() -> None:
    current = OpenIncident(1, Category.HBM_ECC, Action.DRAIN, True, drain_queued=False)
    assert decide([hbm()], current, CFG).drain


def test_action_never_goes_down() -> None:
    current = OpenIncident(1, Category.GPU_LOST_PCIE, Action.REPLACE, True, drain_queued=True)
    assert decide([hbm()], current, CFG).action is Action.REPLACE


def test_application_faults_open_but_never_drain() -> None:
    app = result(Status.FAIL, Action.DRAIN_NOW, Category.APP, check="app")
    d = decide([app], None, CFG)
    assert d.findings == 1 and not d.drain and not d.requeue
    assert d.identity is not None and not d.identity.hardware
    assert d.why.endswith("application fault: no drain")


def test_a_hardware_fault_takes_over_a_non_hardware_incident() -> None:
    operator = OpenIncident(4, Category.OPERATOR, Action.DRAIN, False, drain_queued=True)
    d = decide([xid79()], operator, CFG)
    assert d.incident == 4 and d.identity is not None and d.identity.hardware
    assert d.drain and d.requeue  # escalated from drain to reboot


def test_drain_reason() -> None:
    assert drain_reason("hpresil:", 12, Category.GPU_LOST_PCIE, 79, 3) == (
        "hpresil: #12 gpu_lost_pcie xid 79 gpu 3"
    )
    assert drain_reason("hpresil:", 1, Category.HOST, None, None) == "hpresil: #1 host"
    assert len(drain_reason("x" * 200, 1, Category.HOST, None, None)) == 100
