"""The row_remap check, on real samples and the NVML double's H100s."""

from __future__ import annotations

from dataclasses import replace

from hpresil.checks.row_remap import RowRemapCheck
from hpresil.config.checks import RowRemapConfig
from hpresil.vocab import Action, Category, Status
from hpresil.vocab.gpu import RowRemap
from tests.unit.gpu.samples import A100, BLACKWELL, h100s, real, snap


def _with(rows: RowRemap | None, index: int = 3) -> tuple:  # type: ignore[type-arg]
    gpus = list(h100s())
    gpus[index] = replace(gpus[index], row_remap=rows)
    return tuple(gpus)


def test_healthy_gpus_pass() -> None:
    results = RowRemapCheck().evaluate(snap(h100s()))
    assert len(results) == 8 and {r.status for r in results} == {Status.OK}
    (real_result,) = RowRemapCheck().evaluate(snap(real(BLACKWELL)))
    assert real_result.status is Status.OK and real_result.evidence["pending"] is False


def test_pending_remap_drains_for_a_reset_at_idle() -> None:
    results = RowRemapCheck().evaluate(snap(_with(RowRemap(1, 0, pending=True, failure=False))))
    bad = results[3]
    assert (bad.status, bad.action, bad.category) == (Status.FAIL, Action.DRAIN, Category.HBM_ECC)
    assert "reset the GPU when idle" in bad.summary and bad.is_fault
    assert bad.gpu is not None and bad.gpu.index == 3


def test_failure_needs_a_reset_and_outranks_pending() -> None:
    rows = RowRemap(8, 2, pending=True, failure=True)
    bad = RowRemapCheck().evaluate(snap(_with(rows)))[3]
    assert (bad.status, bad.action) == (Status.FAIL, Action.RESET_GPU)
    assert bad.summary.index("failed") < bad.summary.index("pending")


def test_many_uncorrectable_rows_warn() -> None:
    gpus = _with(RowRemap(0, 512, pending=False, failure=False))
    warned = RowRemapCheck().evaluate(snap(gpus))[3]
    assert (warned.status, warned.action) == (Status.WARN, Action.WATCH) and not warned.is_fault
    config = RowRemapConfig(uncorrectable_warn=1000)
    assert RowRemapCheck(config).evaluate(snap(gpus))[3].status is Status.OK


def test_unsupported_and_unreadable() -> None:
    (mig,) = RowRemapCheck().evaluate(snap(real(A100)))  # N/A under MIG
    assert mig.status is Status.UNSUPPORTED and mig.action is Action.NONE
    gpus = list(_with(None))
    gpus[3] = replace(gpus[3], error="nvmlDeviceGetRemappedRows: Unknown Error")
    assert RowRemapCheck().evaluate(snap(gpus))[3].status is Status.UNKNOWN


def test_lost_gpus_are_skipped_and_failed_queries_unsupported() -> None:
    gpus = list(h100s())
    gpus[0] = replace(gpus[0], lost=True)
    assert len(RowRemapCheck().evaluate(snap(gpus))) == 7
    assert not RowRemapCheck().supported(snap([]))
