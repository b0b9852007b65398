"""Turning a subject's findings into one :class:`CheckResult`, shared by the host checks.

Summaries name thresholds, not changing numbers (those go to the evidence): the agent
reports when a summary changes, so one that carried the free bytes or a duration would
send a report every tick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hpresil.vocab import Action, Category, CheckResult, Status
from hpresil.vocab.snapshot import Snapshot


@dataclass(frozen=True)
class Finding:
    status: Status
    text: str
    action: Action = Action.NONE


def fail(text: str, action: Action = Action.DRAIN) -> Finding:
    return Finding(Status.FAIL, text, action)


def warn(text: str) -> Finding:
    return Finding(Status.WARN, text, Action.WATCH)


def verdict(
    check: str,
    subject: str,
    findings: Sequence[Finding],
    *,
    ok: str,
    category: Category,
    evidence: Mapping[str, Any],
    snapshot: Snapshot,
) -> CheckResult:
    """The worst of ``findings`` (all of that status, joined), or OK saying ``ok``."""
    worst = Status.worst(f.status for f in findings)
    chosen = [f for f in findings if f.status is worst]
    action = Action.worst(f.action for f in chosen)
    text = "; ".join(f.text for f in chosen) if chosen else ok
    return CheckResult(
        check=check,
        status=worst,
        action=action,
        category=category if worst in (Status.FAIL, Status.WARN) else None,
        summary=f"{subject}: {text}"[:500],
        evidence=dict(evidence),
        observed_at=snapshot.taken_at,
    )


def unavailable(check: str, snapshot: Snapshot, kind: type[object]) -> CheckResult:
    """UNKNOWN: the facts this check reads were not collected this tick."""
    why = snapshot.fact_error(kind) or "not collected this tick"
    return CheckResult(
        check=check,
        status=Status.UNKNOWN,
        summary=f"{kind.__name__} unavailable: {why}"[:500],
        evidence={"error": why},
        observed_at=snapshot.taken_at,
    )


def has_facts(snapshot: Snapshot, kind: type[object]) -> bool:
    """Whether a source for ``kind`` ran this tick (answered or failed)."""
    return snapshot.fact(kind) is not None or snapshot.fact_error(kind) is not None
