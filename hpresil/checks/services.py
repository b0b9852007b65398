"""``services``: the daemons a node needs (munged, slurmd by default) are running.

Policy: a required daemon with no live process, or (with ``use_systemd``) whose unit
is not active, fails with a drain (HOST): without munged or slurmd the node cannot
run jobs, and Slurm's own view of it may lag.
"""

from __future__ import annotations

from hpresil.checks.finding import Finding, fail
from hpresil.checks.host_check import HostCheck
from hpresil.config.host import ServicesConfig
from hpresil.host.services import ServiceFacts, ServiceState
from hpresil.vocab import Category, CheckResult
from hpresil.vocab.snapshot import Snapshot

_UP = ("active", "reloading")


class ServicesCheck(HostCheck[ServiceFacts]):
    name = "services"
    kind = ServiceFacts

    def __init__(self, config: ServicesConfig | None = None) -> None:
        self.config = config or ServicesConfig()

    def supported(self, snapshot: Snapshot) -> bool:
        """Only with a daemon required (or its source failed)."""
        facts = snapshot.fact(ServiceFacts)
        return bool(facts and facts.services) or snapshot.fact_error(ServiceFacts) is not None

    def judge(self, facts: ServiceFacts, snapshot: Snapshot) -> list[CheckResult]:
        return [self._service(s, facts, snapshot) for s in facts.services]

    def _service(
        self, service: ServiceState, facts: ServiceFacts, snapshot: Snapshot
    ) -> CheckResult:
        evidence = {
            "pids": list(service.pids),
            "unit": service.unit,
            "unit_state": service.unit_state,
            "systemd_error": facts.systemd_error,
        }
        return self.verdict(
            service.name,
            _findings(service),
            ok="running",
            category=Category.HOST,
            evidence=evidence,
            snapshot=snapshot,
        )


def _findings(service: ServiceState) -> list[Finding]:
    found = [] if service.pids else [fail("not running")]
    if service.unit_state is not None and service.unit_state not in _UP:
        found.append(fail(f"unit {service.unit} is {service.unit_state}"))
    return found
