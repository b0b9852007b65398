"""How the agent runs work wanted at once: coalesced, on a small pool of its own.

A tick for a new XID or the delivery of a new report must not wait for the next
scheduled run, and must not pile up either: :class:`Coalesced` folds the requests that
arrive while a call runs into one more call, and :class:`RunNow` runs them off the
caller's thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)


class Coalesced:
    """Calls ``fn`` now unless a call is running, in which case that call runs
    ``fn`` once more when it finishes: requests are never lost, never stacked."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self._fn = fn
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self.__name__ = getattr(fn, "__name__", "job")

    def __call__(self) -> None:
        self._wanted.set()
        while self._wanted.is_set() and self._lock.acquire(blocking=False):
            try:
                while self._wanted.is_set():
                    self._wanted.clear()
                    self._fn()
            finally:
                self._lock.release()


class RunNow:
    """Runs jobs at once on worker threads, until ``stop`` is set.

    Not one-off scheduler jobs: APScheduler 3 can fail removing a finished one-off job
    while it shuts down.
    """

    def __init__(self, stop: threading.Event, workers: int = 4) -> None:
        self._stop = stop
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hpresil-now")

    def request(self, job: Callable[[], None]) -> None:
        """Run ``job`` now, on a worker thread (not the caller's)."""
        if self._stop.is_set():
            return
        try:
            self._pool.submit(job)
        except RuntimeError:  # stopping: the pool no longer takes work
            log.debug("stopping: %s not run", getattr(job, "__name__", job))

    def shutdown(self) -> None:
        """Wait for the jobs under way; take no more."""
        self._pool.shutdown(wait=True)
