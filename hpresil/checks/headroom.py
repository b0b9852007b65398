"""``headroom``: enough free disk space, inodes and memory.

Policy: below a ``*_fail_*`` threshold the node fails with a drain (HOST): jobs would
die writing their output, or the node would start killing processes. Below a
``*_warn_*`` threshold it warns. A path that cannot be measured is UNKNOWN.
"""

from __future__ import annotations

from hpresil.checks.finding import Finding, fail, warn
from hpresil.checks.host_check import HostCheck
from hpresil.config.host import HeadroomConfig
from hpresil.host.headroom import GIB, DiskSpace, HeadroomFacts, Memory
from hpresil.vocab import Category, CheckResult, Status
from hpresil.vocab.snapshot import Snapshot


def shortfall(
    free: int, total: int, percent: float | None, gib: float | None, what: str
) -> str | None:
    """Which threshold ``free`` of ``total`` is below, in words, or None."""
    if percent is not None and total > 0 and 100.0 * free / total < percent:
        return f"{what} below {percent:g}%"
    if gib is not None and free < gib * GIB:
        return f"{what} below {gib:g} GiB"
    return None


def _levels(fail_at: str | None, warn_at: str | None) -> list[Finding]:
    if fail_at is not None:
        return [fail(fail_at)]
    return [warn(warn_at)] if warn_at is not None else []


class HeadroomCheck(HostCheck[HeadroomFacts]):
    name = "headroom"
    kind = HeadroomFacts

    def __init__(self, config: HeadroomConfig | None = None) -> None:
        self.config = config or HeadroomConfig()

    def judge(self, facts: HeadroomFacts, snapshot: Snapshot) -> list[CheckResult]:
        results = [self._disk(d, snapshot) for d in facts.disks]
        results.append(self._memory(facts, snapshot))
        return results

    def _disk(self, disk: DiskSpace, snapshot: Snapshot) -> CheckResult:
        evidence = {
            "measured_at": disk.measured_at,
            "total_bytes": disk.total_bytes,
            "free_bytes": disk.free_bytes,
            "inodes": disk.inodes,
            "free_inodes": disk.free_inodes,
            "error": disk.error,
        }
        return self.verdict(
            disk.path,
            self._disk_findings(disk),
            ok="enough free space",
            category=Category.HOST,
            evidence=evidence,
            snapshot=snapshot,
        )

    def _disk_findings(self, disk: DiskSpace) -> list[Finding]:
        if disk.error is not None:
            return [Finding(Status.UNKNOWN, f"cannot measure {disk.measured_at}: {disk.error}")]
        c, free, total = self.config, disk.free_bytes, disk.total_bytes
        found = _levels(
            shortfall(free, total, c.disk_fail_free_percent, c.disk_fail_free_gib, "free space"),
            shortfall(free, total, c.disk_warn_free_percent, c.disk_warn_free_gib, "free space"),
        )
        if disk.inodes > 0:  # file systems that do not count inodes report 0
            inodes, left = disk.inodes, disk.free_inodes
            found += _levels(
                shortfall(left, inodes, c.inodes_fail_free_percent, None, "free inodes"),
                shortfall(left, inodes, c.inodes_warn_free_percent, None, "free inodes"),
            )
        return found

    def _memory(self, facts: HeadroomFacts, snapshot: Snapshot) -> CheckResult:
        mem = facts.memory
        findings = self._memory_findings(mem) if mem else []
        if mem is None:
            findings = [Finding(Status.UNKNOWN, f"unreadable: {facts.memory_error}")]
        evidence = {
            "total_bytes": mem.total_bytes if mem else None,
            "available_bytes": mem.available_bytes if mem else None,
            "error": facts.memory_error,
        }
        return self.verdict(
            "memory",
            findings,
            ok="enough available",
            category=Category.HOST,
            evidence=evidence,
            snapshot=snapshot,
        )

    def _memory_findings(self, mem: Memory) -> list[Finding]:
        c, free, total = self.config, mem.available_bytes, mem.total_bytes
        fail_pct, fail_gib = c.memory_fail_available_percent, c.memory_fail_available_gib
        warn_pct, warn_gib = c.memory_warn_available_percent, c.memory_warn_available_gib
        return _levels(
            shortfall(free, total, fail_pct, fail_gib, "available"),
            shortfall(free, total, warn_pct, warn_gib, "available"),
        )
