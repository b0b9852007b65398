"""Agent clocks against the controller's: a warning before a refusal.

A report stamped more than ``controller.max_clock_skew_s`` ahead of the controller's
clock is refused (:mod:`hpresil.controller.app`). Below that, an agent clock running
ahead by more than ``controller.warn_clock_skew_s`` is logged, once per node per
``every_s``, so that a drifting NTP is fixed before its reports are refused. Only an
agent *ahead* is judged: a report's ``sent_at`` also lags while it waits in the
agent's spool (the controller down, a retry), so a clock behind cannot be told from
a late delivery.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

log = logging.getLogger(__name__)


class SkewWatch:
    def __init__(self, warn_s: float, every_s: float = 600.0) -> None:
        self._warn_s = warn_s
        self._every_s = every_s
        self._warned: dict[str, datetime] = {}  # node -> when it was last warned about
        self._lock = threading.Lock()

    def observe(self, node: str, sent_at: datetime, now: datetime) -> float:
        """Seconds the agent's clock is ahead (negative: behind or late); logs a
        warning when it is ahead by more than ``warn_s``."""
        ahead = (sent_at - now).total_seconds()
        if ahead <= self._warn_s:
            return ahead
        with self._lock:
            last = self._warned.get(node)
            if last is not None and (now - last).total_seconds() < self._every_s:
                return ahead
            if len(self._warned) >= 100_000:  # bounded: forget the oldest warnings
                self._warned.clear()
            self._warned[node] = now
        log.warning(
            "%s: agent clock %.0f s ahead of the controller's (reports are refused past "
            "controller.max_clock_skew_s); check its time sync",
            node,
            ahead,
        )
        return ahead
