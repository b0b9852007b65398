"""Many requests' writes, committed together: one transaction for all that arrived
while the last one committed.

A request hands its item to :class:`GroupCommit` and awaits its answer. The first
item starts a commit on a worker thread; items that arrive meanwhile wait for the next
one, which starts as soon as it ends. So a quiet controller commits each item at once
(no timer, no added wait), and a busy one commits the items of many requests in one
transaction: one thread hop and one commit for all of them instead of one each.

A request is answered only after its commit. A commit that fails answers None to each
of its items, as does an item beyond ``max_waiting`` (a bound on what waits): the
caller then takes the item its own way, which answers the failure as it would have
anyway. Nothing is retried here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

MAX_WAITING = 4096  # items waiting for the next commit
MAX_BATCH = 1024  # items in one transaction


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        commit: Callable[[Sequence[T]], Sequence[R | None]],
        *,
        max_waiting: int = MAX_WAITING,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._commit = commit  # runs on a worker thread; one answer per item, in order
        self._max_waiting = max_waiting
        self._max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R | None]]] = []
        self._running = False
        self.batches = 0  # commits run (what the tests count)

    async def __call__(self, item: T) -> R | None:
        """``item``'s answer once committed; None: not taken (take it another way)."""
        if len(self._waiting) >= self._max_waiting:
            return None
        answer: asyncio.Future[R | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, answer))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._run())
        return await answer

    async def _run(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                answers = await self._committed([item for item, _ in batch])
                for (_, answer), given in zip(batch, answers, strict=True):
                    if not answer.done():  # its request may have been cancelled
                        answer.set_result(given)
        finally:
            self._running = False

    async def _committed(self, items: list[T]) -> Sequence[R | None]:
        self.batches += 1
        try:
            answers = await run_in_threadpool(self._commit, items)
            if len(answers) != len(items):
                raise ValueError(f"{len(answers)} answers to {len(items)} items")
            log.debug("group commit: %d in one transaction", len(items))
            return answers
        except Exception as exc:  # each item is then taken its own way, which answers it
            log.debug("a group commit of %d failed: %s", len(items), exc)
            return [None] * len(items)
