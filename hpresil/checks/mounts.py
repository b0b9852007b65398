"""``mounts``: every required file system is mounted and answers.

Policy: a required mount point that is not in the mount table (jobs would write to
the local disk underneath), whose ``stat`` fails (a stale NFS handle) or does not
return within ``stat_timeout_s`` (a hung NFS or Lustre server) fails with a drain
(HOST). Nothing required: the check does not run.
"""

from __future__ import annotations

from hpresil.checks.finding import Finding, fail
from hpresil.checks.host_check import HostCheck
from hpresil.config.host import MountsConfig
from hpresil.host.mounts import MountFacts, MountState
from hpresil.vocab import Category, CheckResult
from hpresil.vocab.snapshot import Snapshot


class MountsCheck(HostCheck[MountFacts]):
    name = "mounts"
    kind = MountFacts

    def __init__(self, config: MountsConfig | None = None) -> None:
        self.config = config or MountsConfig()

    def supported(self, snapshot: Snapshot) -> bool:
        """Only with a mount required (or its source failed)."""
        facts = snapshot.fact(MountFacts)
        return bool(facts and facts.mounts) or snapshot.fact_error(MountFacts) is not None

    def judge(self, facts: MountFacts, snapshot: Snapshot) -> list[CheckResult]:
        return [self._mount(m, snapshot) for m in facts.mounts]

    def _mount(self, mount: MountState, snapshot: Snapshot) -> CheckResult:
        return self.verdict(
            mount.path,
            self._findings(mount),
            ok=f"mounted ({mount.fstype}) and responding",
            category=Category.HOST,
            evidence={
                "mounted": mount.mounted,
                "fstype": mount.fstype,
                "device": mount.device,
                "stat_s": mount.stat_s,
                "hung_s": mount.hung_s,
                "error": mount.error,
            },
            snapshot=snapshot,
        )

    def _findings(self, mount: MountState) -> list[Finding]:
        found = [] if mount.mounted else [fail("not mounted")]
        if mount.hung_s is not None:
            limit = self.config.stat_timeout_s
            found.append(fail(f"not responding (stat hung over {limit:g} s)"))
        elif mount.error is not None:
            found.append(fail(f"stat failed: {mount.error}"))
        return found
