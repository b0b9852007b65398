"""How long a failed action waits before its next try: doubling from ``base_s`` up
to ``cap_s``, at most ``max_attempts`` tries (the remediation executor's)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.5
    cap_s: float = 30.0
    max_attempts: int = 20

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failure."""
        return float(min(self.base_s * 2 ** max(attempts - 1, 0), self.cap_s))
