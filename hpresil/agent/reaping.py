"""When the agent's orphan reaper (:mod:`hpresil.host.orphans`) looks.

At most every ``jobs.observe_s``, off the tick (a look may ask Slurm), one look at a
time, and only while job processes run here: the reaper is made on first need, so an
idle node never loads it nor asks Slurm.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from hpresil.assembly import reaper_for
from hpresil.config import Config
from hpresil.host.slurm_jobs import LocalJobs
from hpresil.vocab import CheckResult

if TYPE_CHECKING:
    from hpresil.host.orphans import OrphanReaper


class Reaping:
    """The reaper's turns: :meth:`due` after each tick, :meth:`look` when it is due."""

    def __init__(self, cfg: Config, node: str, reaper: OrphanReaper | None = None) -> None:
        self._reaper = reaper  # None: made on first need (job processes here)
        self._make = (lambda: reaper_for(cfg, node)) if reaper is None else None
        self._looked_at = time.monotonic()  # the last look (first: observe_s in)
        self._looking = threading.Lock()  # one look at a time
        self._observe_s = cfg.jobs.observe_s

    def due(self, local: LocalJobs | None) -> bool:
        """Whether the reaper should look now at the tick's ``local`` jobs (counted as
        its look: the next is due ``jobs.observe_s`` later)."""
        if local is None or not local.jobs:
            return False
        if self._reaper is None and self._make is not None:
            self._reaper, self._make = self._make(), None
        if self._reaper is None:
            return False
        now = time.monotonic()
        if now - self._looked_at < self._observe_s:
            return False
        self._looked_at = now
        return True

    def look(self, local: LocalJobs | None) -> list[CheckResult]:
        """One look at the processes of the latest tick's ``local`` jobs; a result per
        job whose orphans were killed. None while a look is still under way."""
        if self._reaper is None or not self._looking.acquire(blocking=False):
            return []  # none, or a look (waiting on Slurm) is still under way
        try:
            if local is None:
                return []  # not collected this tick: no look without knowing what runs here
            return self._reaper.look(local.processes())
        finally:
            self._looking.release()
