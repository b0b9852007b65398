"""The gpu_presence check."""

from __future__ import annotations

from hpresil.checks.gpu_presence import GpuPresenceCheck
from hpresil.vocab import Action, Category, Status
from tests.unit.checks.builders import gpus, snapshot


def test_all_present_is_ok() -> None:
    (result,) = GpuPresenceCheck().evaluate(snapshot())
    assert result.status is Status.OK and result.evidence == {"found": 8, "expected": 8}


def test_a_lost_gpu_fails_with_reboot_and_its_identity() -> None:
    samples = gpus({2: {"lost": True, "ecc": None}})
    (result,) = GpuPresenceCheck().evaluate(snapshot(gpu_samples=samples))
    assert (result.status, result.action, result.category) == (
        Status.FAIL,
        Action.REBOOT,
        Category.GPU_LOST_PCIE,
    )
    assert result.gpu == samples[2].identity and result.is_fault


def test_fewer_gpus_than_expected_fails_and_names_the_missing_one() -> None:
    samples = tuple(g for g in gpus() if g.identity.index != 6)
    (result,) = GpuPresenceCheck().evaluate(snapshot(gpu_samples=samples))
    assert (result.status, result.action, result.category) == (
        Status.FAIL,
        Action.REBOOT,
        Category.GPU_LOST_PCIE,
    )
    assert result.evidence["found"] == 7 and result.evidence["missing"] == ["0000:ba:00"]


def test_nvml_failure_is_unknown_not_a_fault() -> None:
    (result,) = GpuPresenceCheck().evaluate(
        snapshot(gpu_samples=(), gpu_error="NVML could not start")
    )
    assert result.status is Status.UNKNOWN and not result.is_fault
    assert "NVML could not start" in result.summary


def test_without_an_expected_count_any_count_is_ok() -> None:
    (result,) = GpuPresenceCheck().evaluate(snapshot(gpu_samples=gpus()[:4], expected=None))
    assert result.status is Status.OK
