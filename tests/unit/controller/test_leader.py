"""Replicas on one database: exactly one leads, and only the leader's executor acts.

In-process contenders (tests/unit/controller/contender.py), each with a lock of its own:
its own PostgreSQL session, or its own descriptor of the SQLite lock file. Paused and
killed leaders, in processes of their own, are in test_leader_processes.py."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from hpresil.adapters.slurm import Slurm
from hpresil.config import Config
from hpresil.controller.leader import Leader
from hpresil.controller.remediation import Executor
from hpresil.store import Store, repo
from hpresil.store.leader_lock import KEY, nudge
from hpresil.store.models import ActionRow
from hpresil.vocab.actions import ActionStatus
from tests.unit.controller.contender import CHECK_S, Contender, Recorded, contender, until
from tests.unit.controller.fakes import FakeBackend, FakeClock

# the controller fixtures' database on PostgreSQL only (``postgres_url`` is the same one)
postgresql_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
__all__ = ["contender"]  # the fixture


def terminate_leader_session(url: str) -> None:
    """``pg_terminate_backend`` of whichever session holds the lock, from a third;
    returns once that session has ended (and with it the lock)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        ended = conn.execute(
            text(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks WHERE locktype = 'advisory'"
                " AND granted AND classid = :high AND objid = :low"
            ),
            {"high": KEY >> 32, "low": KEY & 0xFFFF_FFFF},
        ).all()
    engine.dispose()
    assert [tuple(row) for row in ended] == [(True,)]


def queue_drains(store: Store, clock: FakeClock, *nodes: str) -> None:
    with store.write() as s:
        for node in nodes:
            repo.add_action(s, kind="drain", target=node, why="test", now=clock())


def pending(store: Store) -> int:
    with store.read() as s:
        rows = s.query(ActionRow).filter(ActionRow.status == ActionStatus.PENDING)
        return rows.count()


def test_only_one_of_two_contenders_leads(contender: Contender) -> None:
    first, first_duties = contender()
    second, second_duties = contender()
    assert first.leading and first_duties.running  # the first to try
    for _ in range(20):  # twenty of their checks: the second never leads beside it
        assert not second.leading and not second_duties.running
        assert first.confirm() and not second.confirm()
        time.sleep(CHECK_S)

    first.stop()  # a clean stop lets the lock go: the other takes it
    assert first_duties.stopped_while_leading == [False]
    assert until(lambda: second.leading and second_duties.running)


@postgresql_only
def test_a_terminated_leader_session_hands_leadership_over(
    postgres_url: str, contender: Contender
) -> None:
    first, first_duties = contender()
    second, second_duties = contender()
    assert first.leading and not second.leading

    terminate_leader_session(postgres_url)

    assert not first.confirm()  # asked of the server: no, at once
    assert until(lambda: second.leading and second_duties.running)
    assert until(lambda: not first_duties.running)
    assert first_duties.stopped_while_leading == [False]  # it stopped leading first
    assert not first.leading and second.confirm()


def test_a_followers_executor_runs_nothing(
    contender: Contender, store: Store, slurm: Slurm, backend: FakeBackend, clock: FakeClock
) -> None:
    leader, _ = contender()
    follower, _ = contender()
    queue_drains(store, clock, "node1")

    follows = Executor(store, slurm, Config().policy, clock=clock, leads=follower.confirm)
    assert follows.run_due() == 0
    assert backend.writes("state") == [] and pending(store) == 1  # left for the leader

    leads = Executor(store, slurm, Config().policy, clock=clock, leads=leader.confirm)
    assert leads.run_due() == 1
    assert len(backend.writes("state")) == 1 and pending(store) == 0


class Severed(FakeBackend):
    """Slurm, while the leader's session is ended under it during its first drain."""

    def __init__(self, url: str, *names: str) -> None:
        super().__init__(*names)
        self._url = url

    def set_node_state(self, node: str, state: str, reason: str | None = None) -> None:
        super().set_node_state(node, state, reason)
        if len(self.writes("state")) == 1:
            terminate_leader_session(self._url)


@postgresql_only
def test_a_leader_that_lost_its_session_runs_no_further_action(
    postgres_url: str, contender: Contender, store: Store, clock: FakeClock
) -> None:
    backend = Severed(postgres_url, "node1", "node2", "node3")
    slurm = Slurm(backend, prefix="hpresil:", retries=0, backoff_s=0)
    leader, duties = contender()
    duties.lingering = True  # its executor is this test's: until it ends, no new term
    queue_drains(store, clock, "node1", "node2", "node3")

    executor = Executor(store, slurm, Config().policy, clock=clock, leads=leader.confirm)
    assert executor.run_due() == 1  # the drain under way when the session ended
    assert [c[1] for c in backend.writes("state")] == ["node1"] and pending(store) == 2

    successor, _ = contender()  # the actions wait in the database for the next leader
    assert until(lambda: successor.leading)
    again = Executor(store, slurm, Config().policy, clock=clock, leads=successor.confirm)
    assert again.run_due() == 2
    assert [c[1] for c in backend.writes("state")] == ["node1", "node2", "node3"]


@postgresql_only
def test_a_queued_action_wakes_the_leader_from_another_replica(
    postgres_url: str, contender: Contender, store: Store
) -> None:
    leader, duties = contender()
    assert leader.leading
    nudge(store)  # what a follower's API does when a report queued an action
    assert until(lambda: duties.wakes == 1)


class Keeper:
    """A lock whose keeper the test speaks for: ``held`` is what it would answer."""

    def __init__(self) -> None:
        self.held = True
        self.asked = 0

    def try_acquire(self) -> bool:
        return self.held

    def holds(self) -> bool:
        self.asked += 1
        return self.held

    def release(self) -> None:
        pass

    def fileno(self) -> int | None:
        return None

    def describe(self) -> str:
        return "the test's lock"


def test_each_action_asks_the_locks_keeper_not_the_leaders_memory(
    store: Store, slurm: Slurm, backend: FakeBackend, clock: FakeClock
) -> None:
    keeper, duties = Keeper(), Recorded()
    leader = Leader(keeper, duties, check_s=3600)  # its own check is an hour away
    duties.leader = leader
    leader.start()
    try:
        queue_drains(store, clock, "node1", "node2")
        executor = Executor(store, slurm, Config().policy, clock=clock, leads=leader.confirm)
        assert executor.run_due() == 2 and keeper.asked == 2  # once per action

        keeper.held = False  # lost: the leader's thread has not looked yet
        queue_drains(store, clock, "node3")
        after = Executor(store, slurm, Config().policy, clock=clock, leads=leader.confirm)
        assert after.run_due() == 0
        assert [c[1] for c in backend.writes("state")] == ["node1", "node2"]
        assert until(lambda: not leader.leading)  # and the thread was told at once
    finally:
        leader.stop()
