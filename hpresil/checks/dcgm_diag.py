"""``dcgm_diag``: DCGM's active diagnostic (``dcgmi diag -r N``), deep tier only.

A diagnostic takes minutes and loads every GPU, so it runs only on an idle node and
never per tick: :func:`run_deep` runs it synchronously for ``hpresil check --tier
deep``; inside the agent, :class:`~hpresil.dcgm.sources.DcgmDiagSource` collects the
same :class:`~hpresil.dcgm.sources.DcgmDiag` fact and this check judges it.

Findings map through :mod:`hpresil.dcgm.mapping`: DCGM's severity decides the
action (ISOLATE: drain now, then the RMA path; RESET: reset the GPU; TRIAGE: drain;
MONITOR and CONFIG: watch), its error category the failure category; without a
severity a memory, PCIe or NVLink failure drains now (gpu-health.md s7).

Results: one per GPU with findings (its worst finding decides), OK for every other
GPU the run covered, and a node result with the run's summary and the findings not
tied to a GPU. A busy node or a run that did not complete is UNKNOWN; DCGM not
installed or not running is UNSUPPORTED.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from hpresil.clock import Clock, utcnow
from hpresil.dcgm.mapping import Severity
from hpresil.dcgm.model import DiagFinding, DiagReport, DiagResult, identity
from hpresil.dcgm.parse import EXIT_ISOLATE
from hpresil.dcgm.sources import DcgmDiag, DcgmDiagSource, DiagAdapter
from hpresil.errors import HpresilError
from hpresil.vocab import Action, CheckResult, GpuIdentity, Status
from hpresil.vocab.snapshot import Snapshot


class DcgmDiagCheck:
    name = "dcgm_diag"
    tags = frozenset({"deep"})
    interval_s = 0.0  # runs when the deep tier runs
    timeout_s = 10.0  # judging only; the run itself is the source's

    def supported(self, snapshot: Snapshot) -> bool:
        return snapshot.fact(DcgmDiag) is not None or snapshot.fact_error(DcgmDiag) is not None

    def evaluate(self, snapshot: Snapshot) -> list[CheckResult]:
        fact = snapshot.fact(DcgmDiag)
        error = snapshot.fact_error(DcgmDiag)
        return self.judge(fact, error, snapshot.taken_at, snapshot.identities)

    def judge(
        self,
        fact: DcgmDiag | None,
        error: str | None,
        at: datetime,
        known: Sequence[GpuIdentity] = (),
    ) -> list[CheckResult]:
        """Results for one run (``fact``), or for why there is none (``error``)."""
        if fact is None:
            return [self._node(Status.UNKNOWN, f"DCGM diag did not complete: {error}", at)]
        level = f"DCGM diag level {fact.level}"
        if fact.busy:
            text = f"{level} not run: the node is busy (it runs only on an idle node)"
            return [self._node(Status.UNKNOWN, text, at)]
        if fact.report is None:
            text = f"DCGM not available: {fact.unavailable or 'no report'}"
            return [self._node(Status.UNSUPPORTED, text, at)]
        return self._report(fact.level, fact.report, at, known)

    def _report(
        self, level: int, report: DiagReport, at: datetime, known: Sequence[GpuIdentity]
    ) -> list[CheckResult]:
        results = []
        for gpu in sorted({*report.gpus, *(f.gpu for f in report.findings if f.gpu is not None)}):
            ident = identity(gpu, known, report.serial_of(gpu))
            findings = [f for f in report.findings if f.gpu == gpu]
            results.append(self._gpu(level, ident, findings, report, at))
        results.append(self._run(level, report, at))
        return results

    def _gpu(
        self,
        level: int,
        gpu: GpuIdentity,
        findings: list[DiagFinding],
        report: DiagReport,
        at: datetime,
    ) -> CheckResult:
        if not findings:
            return CheckResult(
                check=self.name,
                status=Status.OK,
                summary=f"GPU {gpu.index}: DCGM diag level {level} found nothing",
                gpu=gpu,
                evidence=_run_evidence(level, report),
                observed_at=at,
            )
        return self._findings(level, gpu, findings, report, at, f"GPU {gpu.index}: ")

    def _run(self, level: int, report: DiagReport, at: datetime) -> CheckResult:
        """The node result: the run's summary, and the findings tied to no GPU."""
        node = [f for f in report.findings if f.gpu is None]
        if node:
            return self._findings(level, None, node, report, at, "")
        status = Status.UNKNOWN if report.overall is DiagResult.UNKNOWN else Status.OK
        return CheckResult(
            check=self.name,
            status=status,
            summary=f"level {level}: {report.summary}"[:500],
            evidence=_run_evidence(level, report),
            observed_at=at,
        )

    def _findings(
        self,
        level: int,
        gpu: GpuIdentity | None,
        findings: list[DiagFinding],
        report: DiagReport,
        at: datetime,
        prefix: str,
    ) -> CheckResult:
        status = Status.worst(f.status for f in findings)
        action = Action.worst(f.action for f in findings)
        worst = max(findings, key=lambda f: f.action.rank)
        text = "; ".join(f"{f.test}: {f.message}" for f in findings)
        evidence = _run_evidence(level, report)
        evidence["findings"] = [_finding(f) for f in findings]
        if any(f.error_severity == Severity.ISOLATE for f in findings) or (
            report.exit_code == EXIT_ISOLATE and action.requeues_jobs
        ):
            evidence["rma_path"] = True  # ISOLATE: drain now, then field diag / RMA
        return CheckResult(
            check=self.name,
            status=status,
            action=action,
            category=worst.category,
            summary=f"{prefix}DCGM diag level {level}: {text}"[:500],
            gpu=gpu,
            xid=worst.xid,
            evidence=evidence,
            observed_at=at,
        )

    def _node(self, status: Status, summary: str, at: datetime) -> CheckResult:
        return CheckResult(check=self.name, status=status, summary=summary[:500], observed_at=at)


def run_deep(
    adapter: DiagAdapter,
    level: int,
    idle: Callable[[], bool],
    *,
    iterations: int = 1,
    gpus: Sequence[GpuIdentity] = (),
    clock: Clock = utcnow,
) -> list[CheckResult]:
    """Run the diagnostic now (when ``idle()``) and judge it: for ``hpresil check
    --tier deep``. Blocks for as long as the run takes (the adapter's hard limit)."""
    source = DcgmDiagSource(adapter, idle, level, iterations=iterations)
    fact: DcgmDiag | None = None
    error: str | None = None
    try:
        fact = source.collect()
    except HpresilError as exc:  # timeout, unreadable output: one line, UNKNOWN
        error = str(exc)
    return DcgmDiagCheck().judge(fact, error, clock(), gpus)


def _run_evidence(level: int, report: DiagReport) -> dict[str, object]:
    return {
        "level": level,
        "overall": report.overall.value,
        "dcgm_version": report.version,
        "exit_code": report.exit_code,
        "skipped_tests": report.skipped_tests,
        **({"runtime_error": report.runtime_error} if report.runtime_error else {}),
    }


def _finding(f: DiagFinding) -> dict[str, object]:
    return f.model_dump(
        mode="json",
        include={
            "test",
            "raw_status",
            "message",
            "error_id",
            "error_category",
            "error_severity",
            "category",
            "action",
            "iteration",
        },
    )
