"""Reports are taken only for nodes Slurm knows (issue 9, defect 6): no phantom node
is stored, none counts in MTTF, and Slurm being unreachable loses no report."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hpresil.adapters.slurm import Slurm
from hpresil.config import Config
from hpresil.controller.errors import NotFound
from hpresil.controller.ingest import Ingest
from hpresil.controller.known import KnownNodes, name_problem
from hpresil.controller.reconcile import Reconciler
from hpresil.errors import SlurmError
from hpresil.store import Store, repo
from hpresil.store.models import IncidentRow, NodeRow, ReportRow
from hpresil.vocab import Category
from tests.unit.controller.fakes import T0, FakeBackend, FakeClock, report, result, xid79


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Counting(FakeBackend):
    def __init__(self, *names: str) -> None:
        super().__init__(*names)
        self.listings = 0

    def nodes(self) -> list[Any]:
        self.listings += 1
        return super().nodes()


def rows(store: Store, model: type[Any]) -> int:
    with store.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def make(store: Store, cfg: Config, clock: FakeClock, backend: FakeBackend, ticks: Ticks) -> Ingest:
    slurm = Slurm(backend, retries=0, backoff_s=0)
    known = KnownNodes(slurm, store, refresh_s=30, monotonic=ticks)
    return Ingest(store, cfg.policy, clock, lambda: None, known=known)


@pytest.mark.parametrize("name", ["ALL", "NODE1", "node9", "localhost"])
def test_a_report_for_a_node_slurm_does_not_know_is_refused_naming_it(
    store: Store, cfg: Config, clock: FakeClock, name: str
) -> None:
    ingest = make(store, cfg, clock, FakeBackend("node1", "node2"), Ticks())
    with pytest.raises(NotFound, match=f"^node: slurm has no node named '{name}'$"):
        ingest(report(name, xid79()))
    assert (rows(store, NodeRow), rows(store, ReportRow), rows(store, IncidentRow)) == (0, 0, 0)
    ingest(report("node1", xid79()))
    assert rows(store, NodeRow) == 1 and rows(store, IncidentRow) == 1


@pytest.mark.parametrize("name", ["--help", "-node1", "..", ".", ".hidden", "a b", ""])
def test_names_that_cannot_be_slurm_nodes_are_refused_without_asking_slurm(
    store: Store, cfg: Config, clock: FakeClock, name: str
) -> None:
    backend = Counting("node1")
    ingest = make(store, cfg, clock, backend, Ticks())
    rep = report("node1").model_copy(update={"node": name})  # past the wire's own pattern
    with pytest.raises(NotFound, match=r"^node: .* is not a Slurm node name"):
        ingest(rep)
    assert backend.listings == 0 and rows(store, NodeRow) == 0


def test_slurm_node_names_pass_the_syntax_check() -> None:
    for name in ("node1", "gpu-a01", "n_1.rack2", "X" * 128):
        assert name_problem(name) is None
    assert name_problem("X" * 129) is not None


def test_a_node_added_to_slurm_is_taken_once_the_list_may_be_read_again(
    store: Store, cfg: Config, clock: FakeClock
) -> None:
    backend, ticks = Counting("node1"), Ticks()
    ingest = make(store, cfg, clock, backend, ticks)
    ingest(report("node1"))
    backend.set_node("node4", "IDLE")
    for junk in ("junk1", "junk2", "node4"):  # within refresh_s: Slurm asked once
        with pytest.raises(NotFound):
            ingest(report(junk))
    assert backend.listings == 1
    ticks.now += 31
    ingest(report("node4"))
    assert backend.listings == 2 and rows(store, NodeRow) == 2


def test_slurm_unreachable_keeps_known_nodes_and_defers_unknown_ones(
    store: Store, cfg: Config, clock: FakeClock
) -> None:
    backend = FakeBackend("node1", "node2")
    Reconciler(store, Slurm(backend, retries=0, backoff_s=0), cfg.controller, clock=clock).sync()
    backend.set_node("node3", "IDLE")
    backend.fail_next = 100  # slurmctld is down from now on
    ingest = make(store, cfg, clock, backend, Ticks())  # a controller restarted meanwhile
    ingest(report("node1", result()))  # known from the store: no Slurm needed
    with pytest.raises(SlurmError):  # 502: the agent keeps the report and tries later
        ingest(report("node3", result()))
    with store.read() as s:
        assert s.get(NodeRow, "node3") is None
    backend.fail_next = 0


def test_the_api_refuses_a_phantom_node_with_a_4xx_naming_it(
    client: TestClient, store: Store
) -> None:
    answer = client.post("/v1/reports", json=report("ALL", xid79()).model_dump(mode="json"))
    assert answer.status_code == 404
    assert answer.json() == {"detail": "node: slurm has no node named 'ALL'"}
    assert rows(store, NodeRow) == 0


def test_mttf_counts_only_nodes_slurm_listed(
    client: TestClient, store: Store, reconciler: Reconciler, clock: FakeClock
) -> None:
    reconciler.sync()  # Slurm lists node1..node3
    with store.write() as s:  # phantoms stored before reports were checked
        for name in ("ALL", "..", "--help"):
            repo.ensure_node(s, name, T0)
            s.flush()
            s.add(
                IncidentRow(
                    node=name,
                    category=Category.GPU_LOST_PCIE,
                    action=xid79().action,
                    hardware=True,
                    observed_at=T0,
                    detected_at=T0,
                    findings=1,
                )
            )
    clock.advance(3600)
    total = client.get("/v1/stats/mttf").json()["total"]
    assert total["nodes"] == 3 and total["failures"] == 0


def test_a_controller_that_never_had_slurms_list_takes_well_formed_names(
    store: Store, cfg: Config, clock: FakeClock
) -> None:
    backend = FakeBackend("node1")
    backend.fail_next = 100  # Slurm down since the controller started on a new database
    ingest = make(store, cfg, clock, backend, Ticks())
    ingest(report("node1", xid79()))  # the fault is recorded; its drain waits for Slurm
    with pytest.raises(NotFound):
        ingest(report("node1").model_copy(update={"node": "--help"}))
    assert rows(store, IncidentRow) == 1
    backend.fail_next = 0
