"""A burn-in's verdict from its results, as ``hpresil burnin`` exits and the recovery
ladder's burn-in step ends: 0 healthy, 1 unhealthy (something failed), 2 could not
check (nothing was measured, or something could not be, and nothing failed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from hpresil.vocab import CheckResult, Status

Verdict = Literal[0, 1, 2]
VERDICTS: dict[int, str] = {0: "healthy", 1: "unhealthy", 2: "could not check"}


def verdict(results: Sequence[CheckResult]) -> Verdict:
    statuses = {r.status for r in results}
    if Status.FAIL in statuses:
        return 1
    if Status.UNKNOWN in statuses or not statuses & {Status.OK, Status.WARN}:
        return 2
    return 0
