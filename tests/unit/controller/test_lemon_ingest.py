"""The lemon rule through ingest: reports taken in as the API takes them, the strikes
counted in the database (SQLite and PostgreSQL), each incident resolved (the node back
in service) before the next fault."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from hpresil.config import PolicyConfig
from hpresil.config.limits import LimitsConfig
from hpresil.controller.ingest import Ingest
from hpresil.controller.topology import Component, Fabric
from hpresil.store import Store, repo
from hpresil.store.models import RESOLVED
from hpresil.vocab import Action, Category, CheckResult, Status
from tests.unit.controller.fakes import FakeClock, gpu, report, result

DAY = 86400.0
LEAF = Component("switch", "leaf1", frozenset({"node1", "node2"}))
SERIAL = "1654922006536"


def policy(**given: object) -> PolicyConfig:
    return PolicyConfig.model_validate(
        {"expedite_requeue": False, "limits": LimitsConfig(max_out_pct=100), **given}
    )


def fault(
    category: Category, index: int | None, clock: FakeClock, *, serial: str | None = None
) -> CheckResult:
    """A FAIL that drains, on GPU ``index`` (its serial ``serial`` if given: a GPU moved
    there), or on the node (``index`` None)."""
    found = result(
        Status.FAIL, Action.DRAIN, category, check=category.value, index=index, at=clock()
    )
    if serial is not None and index is not None:
        found = found.model_copy(update={"gpu": gpu(index).model_copy(update={"serial": serial})})
    return found


@dataclass(frozen=True)
class Seen:
    action: Action
    summary: str
    why: str  # the drain's, which the decision's is
    shared: bool


class Lab:
    """Ingest on a store, and a clock: each :meth:`strike` opens an incident, reads it
    back and resolves it, a day later than the one before."""

    def __init__(self, store: Store, clock: FakeClock, cfg: PolicyConfig, fabric: Fabric | None):
        self.store, self.clock = store, clock
        self.ingest = Ingest(store, cfg, clock, lambda: None, fabric=fabric)

    def take(self, node: str, *results: CheckResult) -> int:
        ack = self.ingest(report(node, *results))
        (incident,) = ack.incidents
        return incident

    def seen(self, incident: int) -> Seen:
        with self.store.read() as s:
            row = repo.incident(s, incident)
            assert row is not None
            drains = [a.why for a in row.actions if a.kind == "drain"]
            return Seen(
                row.action, row.summary, drains[-1] if drains else "", row.shared_id is not None
            )

    def resolve(self, *incidents: int) -> None:
        with self.store.write() as s:
            for incident in incidents:
                row = repo.incident(s, incident)
                assert row is not None
                repo.resolve(s, row, self.clock())
        self.clock.advance(DAY)

    def strike(self, node: str, *results: CheckResult) -> Seen:
        incident = self.take(node, *results)
        seen = self.seen(incident)
        self.resolve(incident)
        return seen


@pytest.fixture
def lab(store: Store, clock: FakeClock, request: pytest.FixtureRequest) -> Lab:
    """A ``policy`` mark sets ``[policy]``; a ``fabric`` mark, the shared components."""
    mark = request.node.get_closest_marker("policy")
    shared = request.node.get_closest_marker("fabric")
    fabric = Fabric.fixed(shared.args[0]) if shared else None
    return Lab(store, clock, policy(**(mark.kwargs if mark else {})), fabric)


def test_the_third_fault_of_one_gpu_serial_is_replaced_across_categories_and_nodes(
    lab: Lab, clock: FakeClock
) -> None:
    """The GPU moves from node to node: its serial carries its strikes along."""
    first = lab.strike("node1", fault(Category.HBM_ECC, 3, clock, serial=SERIAL))
    second = lab.strike("node2", fault(Category.THERMAL_POWER, 0, clock, serial=SERIAL))
    assert (first.action, second.action) == (Action.DRAIN, Action.DRAIN)
    third = lab.strike("node3", fault(Category.PCIE_LINK, 5, clock, serial=SERIAL))
    assert third.action is Action.REPLACE
    lemon = f"lemon: 3rd hardware fault on GPU serial {SERIAL} in 30 days: replace"
    assert lemon in third.summary and lemon in third.why
    assert "drain now and requeue jobs" in third.why  # the node stays drained
    # another GPU of node3 is not a lemon: node3 has one strike
    assert lab.strike("node3", fault(Category.HBM_ECC, 6, clock)).action is Action.DRAIN


def test_the_third_fault_of_one_node_is_replaced_whatever_its_gpus(
    lab: Lab, clock: FakeClock
) -> None:
    assert lab.strike("node1", fault(Category.HBM_ECC, 0, clock)).action is Action.DRAIN
    assert lab.strike("node1", fault(Category.IB_NETWORK, None, clock)).action is Action.DRAIN
    third = lab.strike("node1", fault(Category.GPU_HANG, 2, clock))
    assert third.action is Action.REPLACE
    assert "lemon: 3rd hardware fault on node node1 in 30 days: replace" in third.why
    # the fourth too, with or without a GPU; another node has no strike
    fourth = lab.strike("node1", fault(Category.HOST, None, clock))
    assert fourth.action is Action.REPLACE and "4th hardware fault on node node1" in fourth.why
    assert lab.strike("node2", fault(Category.HBM_ECC, 0, clock)).action is Action.DRAIN


def test_faults_joining_an_open_incident_count_it_once(lab: Lab, clock: FakeClock) -> None:
    lab.strike("node1", fault(Category.HBM_ECC, 0, clock))
    incident = lab.take("node1", fault(Category.HBM_ECC, 1, clock))  # the 2nd strike
    assert lab.take("node1", fault(Category.PCIE_LINK, 4, clock)) == incident
    assert lab.seen(incident).action is Action.DRAIN  # still the 2nd


@pytest.mark.fabric([LEAF])
def test_shared_application_and_job_incidents_are_no_strikes(
    lab: Lab, clock: FakeClock, store: Store
) -> None:
    for _ in range(2):  # the leaf fails twice: node1's incidents are the switch's
        mine = lab.take("node1", fault(Category.IB_NETWORK, None, clock))
        peer = lab.take("node2", fault(Category.IB_NETWORK, None, clock))
        assert lab.seen(mine).shared and lab.seen(peer).shared
        lab.resolve(mine, peer)
    for _ in range(2):  # the application's faults on GPU 3: incidents, never drains
        app = lab.strike("node1", fault(Category.APP, 3, clock))
        assert app.action is Action.DRAIN and app.why == ""
    with store.write() as s:  # a GPU 3 fault blamed on the job that ran there
        job = repo.new_incident(
            s, "node1", clock(), status=RESOLVED, category=Category.GPU_LOST_PCIE, job_id=7
        )
        job.gpu_index, job.gpu_serial = 3, gpu(3).serial
    clock.advance(DAY)
    assert lab.strike("node1", fault(Category.HBM_ECC, 3, clock)).action is Action.DRAIN
    assert lab.strike("node1", fault(Category.HBM_ECC, 3, clock)).action is Action.DRAIN
    third = lab.strike("node1", fault(Category.HBM_ECC, 3, clock))
    assert third.action is Action.REPLACE and "3rd hardware fault on GPU serial" in third.why


@pytest.mark.fabric([LEAF])
def test_a_fault_joining_a_shared_incident_is_no_strike(lab: Lab, clock: FakeClock) -> None:
    """GPU ``SERIAL`` failed twice on node3; moved to node1, it fails again while
    node1's incident is the leaf switch's: no third strike."""
    for category in (Category.HBM_ECC, Category.GPU_HANG):
        lab.strike("node3", fault(category, 3, clock, serial=SERIAL))
    mine = lab.take("node1", fault(Category.IB_NETWORK, None, clock))
    lab.take("node2", fault(Category.IB_NETWORK, None, clock))
    assert lab.seen(mine).shared
    assert lab.take("node1", fault(Category.HBM_ECC, 5, clock, serial=SERIAL)) == mine
    assert lab.seen(mine).action is Action.DRAIN


@pytest.mark.policy(replace_after=0)
def test_replace_after_zero_turns_the_rule_off(lab: Lab, clock: FakeClock) -> None:
    seen = [lab.strike("node1", fault(Category.HBM_ECC, 3, clock)) for _ in range(5)]
    assert [s.action for s in seen] == [Action.DRAIN] * 5
    assert not any("lemon" in s.why for s in seen)


@pytest.mark.policy(replace_after=2, recurrence_window_days=7)
def test_strikes_older_than_the_window_do_not_count(lab: Lab, clock: FakeClock) -> None:
    lab.strike("node1", fault(Category.HBM_ECC, 3, clock))
    clock.advance(7 * DAY)  # the first strike is 8 days old
    assert lab.strike("node1", fault(Category.PCIE_LINK, 3, clock)).action is Action.DRAIN
    second = lab.strike("node1", fault(Category.GPU_HANG, 3, clock))  # a day later
    assert second.action is Action.REPLACE
    assert "lemon: 2nd hardware fault on GPU serial" in second.why
    assert "in 7 days: replace" in second.why
