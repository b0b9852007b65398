"""Normalised DCGM results: what a diagnostic run or a health check found, in
hpresil's vocabulary, independent of the DCGM release that printed it; and
:func:`identity`, the GPU a DCGM GPU id names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, computed_field

from hpresil.vocab import Action, Category, GpuIdentity, Status

T = TypeVar("T")


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DiagResult(StrEnum):
    """DCGM's word for a test or a run (not hpresil's :class:`~hpresil.vocab.Status`)."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"  # the run did not complete or ran no test
    SKIP = "skip"  # a test whose every result was Skip or "Not Run" (never a run's verdict)


class DiagFinding(_Record):
    """One failed or warned result of one test on one entity (a GPU, or the node)."""

    test: str
    test_category: str = ""  # DCGM's grouping: Deployment, Hardware, Integration, Stress
    entity: str = "node"  # "GPU 3", "CPU 0", or "node" for results not tied to an entity
    gpu: int | None = None  # DCGM's GPU id (the NVML index on a default install)
    serial: str | None = None
    raw_status: str  # as DCGM wrote it: Fail, Warn, ...
    status: Status  # FAIL when the action drains, else WARN
    message: str = ""
    error_id: int | None = None
    error_category: int | None = None
    error_severity: int | None = None
    category: Category
    action: Action
    xid: int | None = None
    iteration: int | None = None  # 1-based, for --iterations runs


class TestOutcome(_Record):
    __test__ = False  # not a pytest class

    name: str
    test_category: str = ""
    result: DiagResult  # DCGM's word, worst over entities: PASS, WARN, FAIL or SKIP
    iteration: int | None = None

    @property
    def skipped(self) -> bool:
        return self.result is DiagResult.SKIP


class DiagReport(_Record):
    """One ``dcgmi diag -j`` run (all its iterations)."""

    format: str  # "4.x" ("DCGM Diagnostic") or "3.x" ("DCGM GPU Diagnostic", also 2.x)
    overall: DiagResult
    summary: str
    version: str | None = None
    driver_version: str | None = None
    tests: tuple[TestOutcome, ...] = ()
    findings: tuple[DiagFinding, ...] = ()
    gpus: tuple[int, ...] = ()  # GPU ids the run reported on
    serials: tuple[tuple[int, str], ...] = ()  # (GPU id, serial) where DCGM gave one
    runtime_error: str | None = None
    iterations: int | None = None
    overall_result: str | None = None  # "Overall Result" of an --iterations run
    exit_code: int | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failing_gpus(self) -> list[int]:
        return sorted(
            {f.gpu for f in self.findings if f.status is Status.FAIL and f.gpu is not None}
        )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failing_tests(self) -> list[str]:
        return _unique(f.test for f in self.findings if f.status is Status.FAIL)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def skipped_tests(self) -> list[str]:
        return _unique(t.name for t in self.tests if t.skipped)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def categories(self) -> list[Category]:
        return _unique(f.category for f in self.findings if f.status is not Status.OK)

    def serial_of(self, gpu: int) -> str | None:
        return dict(self.serials).get(gpu)


class HealthIncident(_Record):
    """One subsystem of one entity that ``dcgmi health -c`` reports as not healthy."""

    entity_group: str  # "GPU", "Switch", "CPU", ...
    entity_id: str
    gpu: int | None = None
    system: str  # "Memory system", "PCIe system", "NvSwitch F", ...
    health: str  # Warning, Failure, or "Internal error"
    message: str = ""
    status: Status
    category: Category
    action: Action


class HealthReport(_Record):
    """One ``dcgmi health -c -j`` answer."""

    overall: str  # healthy, warning, failure, or unknown
    incidents: tuple[HealthIncident, ...] = ()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failing_gpus(self) -> list[int]:
        return sorted(
            {i.gpu for i in self.incidents if i.status is Status.FAIL and i.gpu is not None}
        )


def identity(index: int, known: Sequence[GpuIdentity], serial: str | None = None) -> GpuIdentity:
    """The GPU with DCGM id ``index`` (the NVML index on a default DCGM install)."""
    found = next((g for g in known if g.index == index), None)
    return found if found is not None else GpuIdentity(index=index, serial=serial or None)


def _unique(items: Iterable[T]) -> list[T]:
    out: list[T] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out
