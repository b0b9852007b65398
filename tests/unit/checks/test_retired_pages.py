"""The retired_pages check (GPUs before Ampere)."""

from __future__ import annotations

from dataclasses import replace

from hpresil.checks.retired_pages import RetiredPagesCheck
from hpresil.vocab import Action, Category, Status
from hpresil.vocab.gpu import RetiredPages
from tests.unit.gpu.samples import T4, h100s, real, snap


def _t4(pages: RetiredPages) -> tuple:  # type: ignore[type-arg]
    (gpu,) = real(T4)
    return (replace(gpu, retired_pages=pages),)


def test_real_t4_passes_and_h100_is_unsupported() -> None:
    (t4,) = RetiredPagesCheck().evaluate(snap(real(T4)))
    assert t4.status is Status.OK and t4.evidence == {
        "single_bit": 0,
        "double_bit": 0,
        "pending": False,
    }
    results = RetiredPagesCheck().evaluate(snap(h100s()))
    assert {r.status for r in results} == {Status.UNSUPPORTED}


def test_pending_retirement_drains() -> None:
    (r,) = RetiredPagesCheck().evaluate(snap(_t4(RetiredPages(2, 1, pending=True))))
    assert (r.status, r.action, r.category) == (Status.FAIL, Action.DRAIN, Category.HBM_ECC)


def test_a_full_retirement_table_means_replace() -> None:
    (r,) = RetiredPagesCheck().evaluate(snap(_t4(RetiredPages(40, 23, pending=False))))
    assert (r.status, r.action) == (Status.FAIL, Action.REPLACE)
    (ok,) = RetiredPagesCheck().evaluate(snap(_t4(RetiredPages(40, 22, pending=False))))
    assert ok.status is Status.OK
