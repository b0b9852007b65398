"""Contenders for the leader lock, for test_leader.py and test_leader_processes.py: in
the test's process (the ``contender`` fixture), or in a process of their own:
``python -m tests.unit.controller.contender DATABASE_URL``, which answers each line
read on stdin with whether it leads now, asked of the lock's keeper
(``Leader.confirm``), and exits at the end of its input."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator

import pytest

from hpresil.controller.leader import Leader
from hpresil.store import Store
from hpresil.store.leader_lock import leader_lock

CHECK_S = 0.1


class Recorded:
    """Duties that record when they run, and whether their leader still believed it
    led when they were stopped."""

    def __init__(self) -> None:
        self.running = False
        self.leader: Leader | None = None
        self.stopped_while_leading: list[bool] = []
        self.wakes = 0
        self.lingering = False  # something of the last term still runs: no new term

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        if self.leader is not None:
            self.stopped_while_leading.append(self.leader.leading)
        self.running = False

    @property
    def stopped(self) -> bool:
        return not (self.running or self.lingering)

    @property
    def alive(self) -> bool:
        return self.running

    def woken(self) -> None:
        self.wakes += 1


def new_leader(store: Store) -> tuple[Leader, Recorded]:
    duties = Recorded()
    leader = Leader(leader_lock(store, duties.woken), duties, CHECK_S)
    duties.leader = leader
    return leader, duties


Contender = Callable[[], tuple[Leader, Recorded]]


@pytest.fixture
def contender(store: Store) -> Iterator[Contender]:
    """A new contender for ``store``'s leader lock, started; all stopped at the end."""
    made: list[Leader] = []

    def make() -> tuple[Leader, Recorded]:
        leader, duties = new_leader(store)
        made.append(leader)
        leader.start()
        return leader, duties

    yield make
    for leader in made:
        leader.stop()


def until(condition: Callable[[], bool], limit_s: float = 10.0) -> bool:
    """Whether ``condition`` became true within ``limit_s`` (a bounded wait)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def main() -> None:
    store = Store.open(sys.argv[1])
    leader, _ = new_leader(store)
    leader.start()
    for _line in sys.stdin:
        print(leader.confirm(), flush=True)
    leader.stop()
    store.close()


if __name__ == "__main__":
    main()
