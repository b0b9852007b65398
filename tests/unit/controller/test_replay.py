"""Replaying a policy over the stored history (issue 11, ``hpresil policy replay``): a
history recorded through the real ingest and limits, replayed with the configuration
it ran with, shows no difference; replayed with another, exactly the drains that
configuration adds or removes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from hpresil.adapters.slurm import Slurm
from hpresil.config import PolicyConfig
from hpresil.config.limits import LimitsConfig
from hpresil.controller import limits, replay
from hpresil.controller.ingest import Ingest
from hpresil.controller.operator import Operator
from hpresil.controller.topology import Component, Fabric
from hpresil.store import Store, repo
from hpresil.store.models import ReportRow
from hpresil.vocab import Action, Category, CheckResult, Status
from tests.unit.controller.fakes import T0, FakeBackend, FakeClock, report, result, xid79

NODES = ("n1", "n2", "n3", "n4")
WIDE = PolicyConfig(expedite_requeue=False, limits=LimitsConfig(max_out_pct=100))  # cap 4
ONE_OUT = WIDE.model_copy(update={"limits": LimitsConfig(max_out=1, max_out_pct=100)})
SINCE = T0 - timedelta(days=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store.open(f"sqlite:///{tmp_path}/hpresil.db")
    st.migrate()
    with st.write() as s:
        for name in NODES:
            repo.ensure_node(s, name, T0)
    yield st
    st.close()


def ecc() -> CheckResult:
    return result(Status.FAIL, Action.DRAIN, Category.HBM_ECC)


def record(store: Store, cfg: PolicyConfig, *, operator: bool = False) -> None:
    """A week's story, through the real ingest with ``cfg``: a GPU off the bus on n1,
    ECC on n2, a GPU off the bus on n3, n1 back in service (reconcile resolves it and
    queues what the cap held back), the same GPU of n1 off the bus again (escalated),
    an application fault on n4; heartbeats and passing checks between."""
    clock = FakeClock(T0)
    ingest = Ingest(store, cfg, clock, lambda: None)

    def at(seconds: float, node: str, *results: CheckResult) -> None:
        clock.now = T0 + timedelta(seconds=seconds)
        ingest(report(node, *results))

    at(5, "n4")
    at(10, "n1", xid79())
    at(15, "n2", result(Status.OK))
    if operator:  # a person drains n2 before its ECC fault: the fault joins that incident
        clock.now = T0 + timedelta(seconds=18)
        slurm = Slurm(FakeBackend(*NODES), retries=0, backoff_s=0)
        Operator(store, slurm, cfg, clock).drain("n2", "fan noise", by="operator (token)")
    at(20, "n2", ecc())
    at(30, "n3", xid79())
    back(store, "n1", T0 + timedelta(seconds=40), cfg)
    at(50, "n1", xid79())
    at(60, "n4", result(Status.FAIL, Action.DRAIN, Category.APP, check="xid", xid=13))
    at(70, "n3")


def back(store: Store, node: str, now: datetime, cfg: PolicyConfig) -> None:
    """What reconcile does when a drained node is seen back in service."""
    with store.write() as s:
        incident = repo.open_incident(s, node)
        assert incident is not None
        incident.drained_at = now
        repo.resolve(s, incident, now)
        limits.drain_held_back(s, cfg, now)


def replayed(store: Store, cfg: PolicyConfig) -> replay.Result:
    with store.read() as s:
        return replay.run(s, SINCE, cfg)


def changes(found: replay.Result) -> list[tuple[str, tuple[str, ...]]]:
    return [(d.node, d.changes) for d in found.differences]


@pytest.mark.parametrize("cfg", [WIDE, ONE_OUT], ids=["wide", "one out"])
def test_the_configuration_it_ran_with_reproduces_what_was_stored(
    store: Store, cfg: PolicyConfig
) -> None:
    record(store, cfg)
    found = replayed(store, cfg)
    assert found.differences == []
    # the stored reports are those that changed something: not n4's and n3's heartbeats
    assert (found.reports, found.judged, found.unreadable) == (6, 5, 0)
    assert found.episodes == 5  # n1 twice, n2, n3, n4
    assert found.drained_stored == found.drained_replayed


def test_a_cap_of_one_keeps_the_nodes_past_it_in_service(store: Store) -> None:
    record(store, WIDE)
    found = replayed(store, ONE_OUT)
    # n2 is held back, then drained once n1 is back: no difference; n3 and n1's second
    # episode are held back, their jobs requeued all the same (a GPU off the bus)
    assert changes(found) == [("n3", ("drain removed",)), ("n1", ("drain removed",))]
    assert found.kept_in_service == ["n1", "n3"]
    n3 = found.differences[0]
    assert n3.stored.text() == "drained, jobs requeued"
    assert n3.replayed.text() == "held back (capped), jobs requeued"
    assert n3.category == "gpu_lost_pcie" and "XID 79" in n3.fault
    assert (found.drained_stored, found.drained_replayed) == (4, 2)


def test_lifting_the_cap_adds_the_drains_it_held_back(store: Store) -> None:
    record(store, ONE_OUT)
    found = replayed(store, WIDE)
    assert changes(found) == [("n3", ("drain added",)), ("n1", ("drain added",))]
    assert found.kept_in_service == []


def test_without_requeue_the_jobs_stay(store: Store) -> None:
    record(store, WIDE)
    found = replayed(store, WIDE.model_copy(update={"requeue_jobs": False}))
    assert changes(found) == [
        ("n1", ("requeue removed",)),
        ("n3", ("requeue removed",)),
        ("n1", ("requeue removed",)),
    ]


def test_a_tight_breaker_holds_the_second_node_of_a_category(store: Store) -> None:
    record(store, WIDE)
    tight = WIDE.limits.model_copy(update={"breaker_nodes": 1})
    found = replayed(store, WIDE.model_copy(update={"limits": tight}))
    assert found.breakers_tripped == 1
    assert changes(found) == [
        ("n3", ("drain removed", "requeue removed")),
        ("n1", ("drain removed", "requeue removed")),
    ]
    assert found.differences[0].replayed.held_by == "breaker"


def test_shadow_mode_holds_every_drain(store: Store) -> None:
    record(store, WIDE)
    found = replayed(store, WIDE.model_copy(update={"mode": "shadow"}))
    assert [d.node for d in found.differences] == ["n1", "n2", "n3", "n1"]
    assert {d.replayed.held_by for d in found.differences} == {"shadow"}


def test_escalation_counts_from_the_replays_own_memory(store: Store) -> None:
    """The second XID 79 on n1's GPU climbs the ladder whatever the window, as stored;
    without escalation its action stays, and it still drains: no difference."""
    record(store, WIDE)
    with store.read() as s:
        (second,) = [i for i in repo.incidents(s, node="n1") if i.status == "open"]
    assert second.action is Action.REPLACE
    found = replayed(store, WIDE.model_copy(update={"escalate_on_recurrence": False}))
    assert found.differences == []


def test_since_leaves_out_what_came_before(store: Store) -> None:
    record(store, WIDE)
    with store.read() as s:
        found = replay.run(s, T0 + timedelta(seconds=45), ONE_OUT)
    # n1's second fault is the only report judged; n2 and n3 are still out then (seeded
    # from the stored history), so the cap holds it back
    assert found.judged == 2  # n1's XID 79 and n4's application fault
    assert changes(found) == [("n1", ("drain removed",))]


def test_a_body_that_no_longer_reads_is_counted_and_skipped(store: Store) -> None:
    record(store, WIDE)
    with store.write() as s:
        row = s.scalars(select(ReportRow).where(ReportRow.node == "n2")).all()[-1]
        row.body = {**row.body, "node": "not a node!"}
    found = replayed(store, WIDE)
    assert found.unreadable == 1
    assert changes(found) == [("n2", ("drain removed",))]


def test_an_operators_drain_is_taken_from_the_history(store: Store) -> None:
    """n2's ECC fault joins the incident of the operator's drain: no drain of its own,
    stored or replayed; with a cap of one, n2 is one of the nodes out."""
    record(store, WIDE, operator=True)
    with store.read() as s:
        n2 = repo.incidents(s, node="n2")
    assert [a.kind for a in n2[0].actions] == ["drain"]  # the operator's only
    assert replayed(store, WIDE).differences == []
    found = replayed(store, ONE_OUT)
    assert changes(found) == [("n3", ("drain removed",)), ("n1", ("drain removed",))]


def test_it_starts_at_the_oldest_report_kept(store: Store) -> None:
    """Reports pruned (controller.report_retention_days): what came before them is
    taken from the stored incidents, not shown as drains the replay would not do."""
    record(store, WIDE)
    with store.write() as s:
        repo.prune_reports(s, T0 + timedelta(seconds=25))
    found = replayed(store, WIDE)
    assert found.since == T0 + timedelta(seconds=30)
    assert found.differences == [] and found.judged == 3


def test_the_breaker_counts_a_shared_component_once_as_it_was_stored(store: Store) -> None:
    """Two nodes under one switch losing InfiniBand: stored as one shared incident, both
    drained under ``breaker_nodes = 1``; the replay takes the attribution as stored."""
    cfg = WIDE.model_copy(update={"limits": LimitsConfig(max_out_pct=100, breaker_nodes=1)})
    leaf = Fabric.fixed([Component("switch", "leaf1", frozenset({"n1", "n2"}))])
    clock = FakeClock(T0)
    ingest = Ingest(store, cfg, clock, lambda: None, fabric=leaf)
    ib = result(Status.FAIL, Action.DRAIN, Category.IB_NETWORK, check="ib", index=None)
    for second, node in ((10, "n1"), (20, "n2")):
        clock.now = T0 + timedelta(seconds=second)
        ingest(report(node, ib))
    found = replayed(store, cfg)
    assert found.differences == [] and found.drained_stored == found.drained_replayed == 2
