"""The node listing, reused for no longer than it took to read.

``sinfo -N --json`` in 22.05 prints every node whatever ``--nodes`` says: at 20,000
nodes that is some 26 MB of JSON, the better part of a second to read, for the one
node a drain needs. A burst of drains (a rack failing at once) would read it once per
node. :class:`Listing` keeps the last listing and answers from it while it is younger
than the read took: the view a drain decides on is never staler than a fresh read
would have made it by the time it arrived (on a small cluster, milliseconds). What
hpresil itself changes (its own drains and resumes) is written into the kept listing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from hpresil.adapters.slurm.model import SlurmNode


class Listing:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._nodes: dict[str, SlurmNode] = {}
        self._read_at = 0.0
        self._valid_s = 0.0  # how long the last read took: how long it is reused

    def read(self, read: Callable[[], Sequence[SlurmNode]]) -> list[SlurmNode]:
        """A fresh listing (``read``), kept."""
        start = self._monotonic()
        nodes = list(read())
        end = self._monotonic()
        with self._lock:
            self._nodes = {n.name: n for n in nodes}
            self._read_at, self._valid_s = end, end - start
        return nodes

    def recent(self, name: str) -> SlurmNode | None:
        """``name`` from the kept listing while it is younger than its read took."""
        with self._lock:
            if self._monotonic() - self._read_at >= self._valid_s:
                return None
            return self._nodes.get(name)

    def drained(self, name: str, reason: str) -> None:
        self._patch(name, lambda n: replace(n, states=n.states | {"DRAIN"}, reason=reason))

    def resumed(self, name: str) -> None:
        self._patch(name, lambda n: replace(n, states=n.states - {"DRAIN"}, reason=None))

    def _patch(self, name: str, change: Callable[[SlurmNode], SlurmNode]) -> None:
        with self._lock:
            node = self._nodes.get(name)
            if node is not None:
                self._nodes[name] = change(node)
