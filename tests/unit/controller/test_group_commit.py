"""GroupCommit: items that arrive while a commit runs are committed together, each
answered after its own commit; a failed commit, or too many waiting, answers None."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from hpresil.controller.group_commit import GroupCommit

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder:
    """A commit that records its batches; ``hold`` keeps the first one running."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.fail = False

    def __call__(self, items: Sequence[int]) -> list[str | None]:
        self.hold.wait(5)
        self.batches.append(list(items))
        if self.fail:
            raise RuntimeError("database is locked")
        return [f"took {i}" for i in items]


async def started(group: GroupCommit[int, str], item: int) -> asyncio.Task[str | None]:
    task = asyncio.get_running_loop().create_task(group(item))
    await asyncio.sleep(0)  # it is waiting now
    return task


async def test_items_arriving_while_a_commit_runs_are_committed_together() -> None:
    commit = Recorder()
    group = GroupCommit(commit)
    commit.hold.clear()  # the first commit runs on and on
    first = await started(group, 0)
    rest = [await started(group, i) for i in range(1, 6)]
    commit.hold.set()
    answers = await asyncio.gather(first, *rest)
    assert answers == [f"took {i}" for i in range(6)]  # each its own, in order
    assert commit.batches == [[0], [1, 2, 3, 4, 5]] and group.batches == 2


async def test_a_quiet_item_is_committed_at_once_alone() -> None:
    commit = Recorder()
    group = GroupCommit(commit)
    assert await group(1) == "took 1"
    assert await group(2) == "took 2"
    assert commit.batches == [[1], [2]]


async def test_a_failed_commit_answers_none_to_each_and_the_next_one_runs() -> None:
    commit = Recorder()
    group = GroupCommit(commit)
    commit.fail = True
    assert await asyncio.gather(group(1), group(2)) == [None, None]
    commit.fail = False
    assert await group(3) == "took 3"


async def test_a_commit_answering_the_wrong_number_answers_none() -> None:
    group: GroupCommit[int, str] = GroupCommit(lambda items: ["one"])
    assert await asyncio.gather(group(1), group(2)) == [None, None]


async def test_beyond_max_waiting_an_item_is_not_taken() -> None:
    commit = Recorder()
    group = GroupCommit(commit, max_waiting=2)
    commit.hold.clear()
    first = await started(group, 0)  # committing: no longer waiting
    waiting = [await started(group, i) for i in (1, 2)]
    assert await group(3) is None  # two wait already: take it another way
    commit.hold.set()
    assert await asyncio.gather(first, *waiting) == ["took 0", "took 1", "took 2"]


async def test_a_batch_is_at_most_max_batch() -> None:
    commit = Recorder()
    group = GroupCommit(commit, max_batch=2)
    commit.hold.clear()
    first = await started(group, 0)
    rest = [await started(group, i) for i in range(1, 6)]
    commit.hold.set()
    await asyncio.gather(first, *rest)
    assert commit.batches == [[0], [1, 2], [3, 4], [5]]
