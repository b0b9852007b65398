"""The verdict cache: the node's latest verdict, in one JSON file for the Slurm hooks.

``status`` and ``action`` are the worst of the current results (:meth:`Status.worst`,
:meth:`Action.worst`); ``results`` lists them. XID events are not current results: they
are listed for ``EVENT_HOLD_S`` under ``recent_events``, apart from ``status``, so that
a hook does not drain again a node returned to service after, say, a GPU reset.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from hpresil.fsutil import atomic_write
from hpresil.vocab import Action, CheckResult, Status

log = logging.getLogger(__name__)

CACHE_REFRESH_S = 30.0  # the hooks trust a verdict for hooks.fresh_s (120 s by default)

EVENT_HOLD_S = 600.0  # how long the verdict cache lists an event


class VerdictCache:
    """Writes ``path`` (atomically) after each tick when the verdict changed, else often
    enough to stay fresh for the hooks (every ``CACHE_REFRESH_S``): encoding ~100
    results each tick was the largest CPU cost of an idle agent. One writer: the tick."""

    def __init__(
        self, path: Path, node: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._path = path
        self._node = node
        self._clock = clock
        self._recent: deque[tuple[float, CheckResult]] = deque()  # (clock time, event)
        self._written = float("-inf")  # clock time of the last write

    def update(
        self,
        at: datetime,
        results: Sequence[CheckResult],
        events: Sequence[CheckResult],
        *,
        changed: bool,
    ) -> None:
        """A tick taken ``at`` judged ``results`` and saw ``events`` (``changed``: its
        results differ from the previous tick's). New events rewrite the cache too."""
        now = self._clock()
        self._recent.extend((now, e) for e in events)
        while self._recent and now - self._recent[0][0] > EVENT_HOLD_S:
            self._recent.popleft()
        if changed or events or now - self._written >= CACHE_REFRESH_S:
            self._write(at, results, tuple(e for _, e in self._recent))
            self._written = now

    def _write(
        self, at: datetime, results: Sequence[CheckResult], recent: Sequence[CheckResult]
    ) -> None:
        verdict = {
            "node": self._node,
            "at": at.isoformat(),
            "status": Status.worst(r.status for r in results).value,
            "action": Action.worst(r.action for r in results).value,
            "results": [r.model_dump(mode="json") for r in results],
            "recent_events": [r.model_dump(mode="json") for r in recent],
        }
        try:
            atomic_write(self._path, json.dumps(verdict) + "\n", sync=False)
        except OSError as exc:
            log.warning("cannot write verdict cache %s: %s", self._path, exc)
