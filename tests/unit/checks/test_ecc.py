"""The ecc check."""

from __future__ import annotations

from hpresil.checks.ecc import EccCheck
from hpresil.vocab import Action, Category, Status
from hpresil.vocab.gpu import EccCounts, EccInfo
from tests.unit.checks.builders import gpus, snapshot


def test_clean_gpus_are_ok() -> None:
    results = EccCheck().evaluate(snapshot())
    assert len(results) == 8 and {r.status for r in results} == {Status.OK}


def test_uncorrected_errors_fail_with_reset_on_that_gpu() -> None:
    samples = gpus({4: {"ecc": EccInfo(volatile=EccCounts(corrected=0, uncorrected=3))}})
    results = EccCheck().evaluate(snapshot(gpu_samples=samples))
    (bad,) = [r for r in results if r.status is not Status.OK]
    assert (bad.status, bad.action, bad.category) == (
        Status.FAIL,
        Action.RESET_GPU,
        Category.HBM_ECC,
    )
    assert bad.gpu == samples[4].identity and bad.evidence["uncorrected_volatile"] == 3


def test_missing_counter_is_unsupported_never_unhealthy() -> None:
    samples = gpus({1: {"ecc": None}})
    results = EccCheck().evaluate(snapshot(gpu_samples=samples))
    assert results[1].status is Status.UNSUPPORTED and results[1].action is Action.NONE


def test_unreadable_counter_is_unknown() -> None:
    error = "nvmlDeviceGetTotalEccErrors: Unknown Error"
    samples = gpus({1: {"ecc": None, "error": error}})
    results = EccCheck().evaluate(snapshot(gpu_samples=samples))
    assert results[1].status is Status.UNKNOWN and "Unknown Error" in results[1].summary


def test_lost_gpus_are_left_to_gpu_presence() -> None:
    samples = gpus({0: {"lost": True, "ecc": None}})
    results = EccCheck().evaluate(snapshot(gpu_samples=samples))
    assert [r.gpu.index for r in results if r.gpu] == list(range(1, 8))


def test_not_supported_when_gpus_could_not_be_read() -> None:
    assert not EccCheck().supported(snapshot(gpu_samples=(), gpu_error="boom"))
    assert EccCheck().supported(snapshot())
