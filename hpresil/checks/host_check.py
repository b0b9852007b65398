"""What the host checks (headroom, ib, mounts, processes, services) share.

A host check judges one kind of fact (``kind``: :class:`~hpresil.host.ib.IbFacts`,
...) collected by its fact source. It subclasses :class:`HostCheck` and writes
``judge(facts, snapshot)``, usually as a list of
:class:`~hpresil.checks.finding.Finding` per subject (a disk, a port, a daemon) turned
into one result by :meth:`HostCheck.verdict`. It runs when its source ran this tick;
facts that could not be collected are one UNKNOWN result.

Summaries name thresholds, not changing numbers (those go to the evidence): the agent
reports when a summary changes, so one that carried the free bytes or a duration would
send a report every tick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from hpresil.checks.finding import Finding
from hpresil.vocab import Action, Category, CheckResult, Status
from hpresil.vocab.snapshot import Snapshot

F = TypeVar("F")


class HostCheck(Generic[F]):
    """A check of one kind of host facts: subclasses set ``kind`` and write ``judge``."""

    name = "host"
    kind: type[F]  # the facts this check judges
    tags = frozenset({"quick", "continuous"})
    interval_s = 0.0
    timeout_s = 5.0

    def supported(self, snapshot: Snapshot) -> bool:
        """Whether a source for ``kind`` ran this tick (answered or failed)."""
        return snapshot.fact(self.kind) is not None or snapshot.fact_error(self.kind) is not None

    def evaluate(self, snapshot: Snapshot) -> list[CheckResult]:
        facts = snapshot.fact(self.kind)
        if facts is None:
            return [self.unavailable(snapshot)]
        return self.judge(facts, snapshot)

    def judge(self, facts: F, snapshot: Snapshot) -> list[CheckResult]:
        raise NotImplementedError

    def unavailable(self, snapshot: Snapshot) -> CheckResult:
        """UNKNOWN: the facts this check reads were not collected this tick."""
        why = snapshot.fact_error(self.kind) or "not collected this tick"
        return CheckResult(
            check=self.name,
            status=Status.UNKNOWN,
            summary=f"{self.kind.__name__} unavailable: {why}"[:500],
            evidence={"error": why},
            observed_at=snapshot.taken_at,
        )

    def verdict(
        self,
        subject: str,
        findings: Sequence[Finding],
        *,
        ok: str,
        category: Category,
        evidence: Mapping[str, Any],
        snapshot: Snapshot,
    ) -> CheckResult:
        """One result for ``subject``: the worst status among ``findings``, with all the
        findings of that status joined and the most disruptive of their actions; or OK
        saying ``ok``. ``category`` goes with a FAIL or WARN."""
        worst = Status.worst(f.status for f in findings)
        chosen = [f for f in findings if f.status is worst]
        action = Action.worst(f.action for f in chosen)
        text = "; ".join(f.text for f in chosen) if chosen else ok
        return CheckResult(
            check=self.name,
            status=worst,
            action=action,
            category=category if worst in (Status.FAIL, Status.WARN) else None,
            summary=f"{subject}: {text}"[:500],
            evidence=dict(evidence),
            observed_at=snapshot.taken_at,
        )
