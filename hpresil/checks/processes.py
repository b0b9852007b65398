"""``processes``: nothing stuck in uninterruptible sleep, no pile of zombies.

Policy: a process in D for ``d_state_fail_s`` fails with a drain (HOST): it holds a
device, driver or mount that the next job will need, and only a reboot frees it.
Shorter but persisting D states (one for ``d_state_warn_s``, or
``d_state_warn_count`` seen on two ticks running) warn, as do
``zombie_warn_count`` zombies (a leak in some parent; harmless until pids run out).
"""

from __future__ import annotations

from collections.abc import Sequence

from hpresil.checks.finding import Finding, fail, warn
from hpresil.checks.host_check import HostCheck
from hpresil.config.host import ProcessesConfig
from hpresil.host.processes import ProcessFacts, StuckProcess
from hpresil.vocab import Category, CheckResult
from hpresil.vocab.snapshot import Snapshot

NAMED = 5  # processes named in a summary


def _names(procs: Sequence[StuckProcess]) -> str:
    named = ", ".join(f"{p.name}[{p.pid}]" for p in sorted(procs, key=lambda p: p.pid)[:NAMED])
    return named + (f" and {len(procs) - NAMED} more" if len(procs) > NAMED else "")


class ProcessesCheck(HostCheck[ProcessFacts]):
    name = "processes"
    kind = ProcessFacts

    def __init__(self, config: ProcessesConfig | None = None) -> None:
        self.config = config or ProcessesConfig()

    def judge(self, facts: ProcessFacts, snapshot: Snapshot) -> list[CheckResult]:
        return [self._d_state(facts, snapshot), self._zombies(facts, snapshot)]

    def _d_state(self, facts: ProcessFacts, snapshot: Snapshot) -> CheckResult:
        evidence = {
            "total": facts.total,
            "d_state": [
                {"pid": p.pid, "name": p.name, "in_d_s": round(p.in_d_s, 1)} for p in facts.d_state
            ],
        }
        return self.verdict(
            "D state",
            self._d_findings(facts.d_state),
            ok="no process stuck in uninterruptible sleep",
            category=Category.HOST,
            evidence=evidence,
            snapshot=snapshot,
        )

    def _d_findings(self, procs: Sequence[StuckProcess]) -> list[Finding]:
        cfg = self.config
        stuck = [p for p in procs if p.in_d_s >= cfg.d_state_fail_s]
        if stuck:
            return [fail(f"stuck over {cfg.d_state_fail_s:g} s: {_names(stuck)}")]
        long = [p for p in procs if p.in_d_s >= cfg.d_state_warn_s]
        if long:
            return [warn(f"in D over {cfg.d_state_warn_s:g} s: {_names(long)}")]
        persisting = [p for p in procs if p.persisting]
        if len(persisting) >= cfg.d_state_warn_count:
            count = cfg.d_state_warn_count
            return [warn(f"{count} or more processes staying in D: {_names(persisting)}")]
        return []

    def _zombies(self, facts: ProcessFacts, snapshot: Snapshot) -> CheckResult:
        limit = self.config.zombie_warn_count
        findings = []
        if facts.zombies >= limit:
            parent = facts.zombie_parents[0][0] if facts.zombie_parents else "?"
            findings.append(warn(f"{limit} or more, most under pid {parent}"))
        evidence = {
            "zombies": facts.zombies,
            "parents": [{"ppid": ppid, "zombies": n} for ppid, n in facts.zombie_parents],
        }
        return self.verdict(
            "zombies",
            findings,
            ok=f"fewer than {limit}",
            category=Category.HOST,
            evidence=evidence,
            snapshot=snapshot,
        )
