"""``retired_pages``: dynamic page retirement (GPUs before Ampere).

Policy (gpu-health.md s4/s7, as DCGM and Azure): a retirement *pending* takes effect
at the next GPU reset: drain, reset when idle. ``max_retired`` (63) or more retired
pages in all, single- and double-bit, is at the retirement table's limit: the GPU
is due for replacement. Ampere and later remap rows instead: UNSUPPORTED there.
"""

from __future__ import annotations

from hpresil.checks.finding import fail
from hpresil.checks.per_gpu import PerGpuCheck
from hpresil.config.checks import RetiredPagesConfig
from hpresil.vocab import Action, Category, CheckResult
from hpresil.vocab.gpu import GpuSample
from hpresil.vocab.snapshot import Snapshot


class RetiredPagesCheck(PerGpuCheck):
    name = "retired_pages"

    def __init__(self, config: RetiredPagesConfig | None = None) -> None:
        self.config = config or RetiredPagesConfig()

    def judge(self, gpu: GpuSample, snapshot: Snapshot) -> CheckResult:
        pages = gpu.retired_pages
        if pages is None:
            return self.unavailable(gpu, snapshot, "page retirement")
        evidence = {"single_bit": pages.single_bit, "double_bit": pages.double_bit}
        evidence["pending"] = pages.pending
        findings = []
        if pages.total >= self.config.max_retired:
            text = f"{pages.total} pages retired (limit {self.config.max_retired}): replace"
            findings.append(fail(text, Action.REPLACE, Category.HBM_ECC))
        if pages.pending:
            text = "page retirement pending: reset the GPU when idle"
            findings.append(fail(text, Action.DRAIN, Category.HBM_ECC))
        ok = f"{pages.total} pages retired, none pending"
        return self.verdict(gpu, snapshot, findings, ok, evidence)
