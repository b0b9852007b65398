"""``dcgm_health``: what DCGM's background health watches report, per GPU.

Reads the :class:`~hpresil.dcgm.sources.DcgmHealth` fact (``DcgmHealthSource``).
A subsystem in Warning is WARN / watch; in Failure it is FAIL / drain, drain-now for
memory (gpu-health.md s4/s7; :func:`hpresil.dcgm.mapping.health_action`). DCGM not
installed or not running is UNSUPPORTED ("DCGM not available"), never a failure; a
query that failed is UNKNOWN. Without the source configured the check does not run.

One result per GPU with incidents, an OK result per other known GPU (it supersedes
an older incident in the controller's latest-result view), and a node result for
incidents on other entities (NVSwitch, CPU, ...) or when no GPU result was made.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from hpresil.dcgm.model import HealthIncident, HealthReport, identity
from hpresil.dcgm.sources import DcgmHealth
from hpresil.vocab import Action, CheckResult, GpuIdentity, Status
from hpresil.vocab.snapshot import Snapshot


class DcgmHealthCheck:
    name = "dcgm_health"
    tags = frozenset({"continuous"})
    interval_s = 0.0  # the source paces dcgmi itself
    timeout_s = 5.0

    def supported(self, snapshot: Snapshot) -> bool:
        return snapshot.fact(DcgmHealth) is not None or snapshot.fact_error(DcgmHealth) is not None

    def evaluate(self, snapshot: Snapshot) -> list[CheckResult]:
        at = snapshot.taken_at
        fact = snapshot.fact(DcgmHealth)
        if fact is None:
            error = snapshot.fact_error(DcgmHealth) or "no answer"
            return [self._node(Status.UNKNOWN, f"DCGM health unreadable: {error}", at)]
        if fact.report is None:
            reason = fact.unavailable or "no report"
            return [self._node(Status.UNSUPPORTED, f"DCGM not available: {reason}", at)]
        return self._judge(fact.report, snapshot.identities, at)

    def _judge(
        self, report: HealthReport, known: Sequence[GpuIdentity], at: datetime
    ) -> list[CheckResult]:
        by_gpu: dict[int, list[HealthIncident]] = {}
        for incident in report.incidents:
            if incident.gpu is not None:
                by_gpu.setdefault(incident.gpu, []).append(incident)
        results = [
            self._gpu(identity(gpu, known), incidents, at)
            for gpu, incidents in sorted(by_gpu.items())
        ]
        results += [self._quiet(g, at) for g in known if g.index not in by_gpu]
        other = [i for i in report.incidents if i.gpu is None]
        if other or not results:
            results.append(self._entities(report, other, at))
        return results

    def _gpu(self, gpu: GpuIdentity, incidents: list[HealthIncident], at: datetime) -> CheckResult:
        return self._judged(incidents, at, gpu)

    def _quiet(self, gpu: GpuIdentity, at: datetime) -> CheckResult:
        return CheckResult(
            check=self.name,
            status=Status.OK,
            summary=f"GPU {gpu.index}: DCGM health watches report no incident",
            gpu=gpu,
            observed_at=at,
        )

    def _entities(
        self, report: HealthReport, incidents: list[HealthIncident], at: datetime
    ) -> CheckResult:
        if not incidents:
            status = Status.OK if report.overall == "healthy" else Status.UNKNOWN
            return self._node(status, f"DCGM overall health: {report.overall}", at)
        return self._judged(incidents, at, None)

    def _judged(
        self, incidents: list[HealthIncident], at: datetime, gpu: GpuIdentity | None
    ) -> CheckResult:
        """The worst of ``incidents``, on ``gpu`` or (None) on the node's other entities."""
        status = Status.worst(i.status for i in incidents)
        worst = next(i for i in incidents if i.status is status)
        where = f"GPU {gpu.index}: " if gpu is not None else ""
        return CheckResult(
            check=self.name,
            status=status,
            action=Action.worst(i.action for i in incidents),
            category=worst.category,
            summary=f"{where}{_describe(incidents)}"[:500],
            gpu=gpu,
            evidence={"incidents": [_evidence(i) for i in incidents]},
            observed_at=at,
        )

    def _node(self, status: Status, summary: str, at: datetime) -> CheckResult:
        return CheckResult(check=self.name, status=status, summary=summary[:500], observed_at=at)


def _describe(incidents: list[HealthIncident]) -> str:
    parts = []
    for i in incidents:
        where = "" if i.gpu is not None else f"{i.entity_group} {i.entity_id} "
        parts.append(f"{where}{i.system} {i.health}" + (f": {i.message}" if i.message else ""))
    return "; ".join(parts)


def _evidence(incident: HealthIncident) -> dict[str, object]:
    return incident.model_dump(
        mode="json", include={"entity_group", "entity_id", "system", "health", "message"}
    )
