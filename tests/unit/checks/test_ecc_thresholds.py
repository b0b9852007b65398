"""The ecc check beyond volatile uncorrected errors: correctable limits, SRAM, mode."""

from __future__ import annotations

from dataclasses import replace

from hpresil.checks.ecc import EccCheck
from hpresil.config.checks import EccConfig
from hpresil.vocab import Action, Category, Status
from hpresil.vocab.gpu import EccCounts, EccInfo, GpuSample
from tests.unit.gpu.samples import A100, BLACKWELL, T4, h100s, real, snap


def _ecc(gpu: GpuSample, **aggregate: int) -> GpuSample:
    assert gpu.ecc is not None and gpu.ecc.aggregate is not None
    return replace(gpu, ecc=replace(gpu.ecc, aggregate=replace(gpu.ecc.aggregate, **aggregate)))


def test_real_gpus_and_the_doubles_h100s_pass() -> None:
    for gpus in (real(A100), real(T4), h100s()):
        assert {r.status for r in EccCheck().evaluate(snap(gpus))} == {Status.OK}


def test_disabled_ecc_warns_unless_allowed() -> None:
    (r,) = EccCheck().evaluate(snap(real(BLACKWELL)))
    assert (r.status, r.action) == (Status.WARN, Action.WATCH) and "disabled" in r.summary
    (r2,) = EccCheck(EccConfig(require_enabled=False)).evaluate(snap(real(BLACKWELL)))
    assert r2.status is Status.UNSUPPORTED


def test_correctable_dram_above_azures_limit_drains() -> None:
    (a100,) = real(A100)
    (r,) = EccCheck().evaluate(snap([_ecc(a100, dram_corrected=20_000_001)]))
    assert (r.status, r.action, r.category) == (Status.FAIL, Action.DRAIN, Category.HBM_ECC)
    (ok,) = EccCheck().evaluate(snap([_ecc(a100, dram_corrected=20_000_000)]))
    assert ok.status is Status.OK


def test_correctable_sram_and_the_threshold_flag_drain_as_sram() -> None:
    (a100,) = real(A100)
    (r,) = EccCheck().evaluate(snap([_ecc(a100, sram_corrected=10_001)]))
    assert (r.status, r.category) == (Status.FAIL, Category.SRAM_ECC)
    assert r.evidence["sram_corrected"] == 10_001
    flagged = replace(a100, ecc=replace(a100.ecc or EccInfo(), sram_threshold_exceeded=True))
    (r2,) = EccCheck().evaluate(snap([flagged]))
    assert (r2.status, r2.category) == (Status.FAIL, Category.SRAM_ECC)


def test_uncorrected_only_in_sram_is_sram_ecc_and_resets() -> None:
    (a100,) = real(A100)
    vol = EccCounts(corrected=0, uncorrected=2, dram_uncorrected=0, sram_uncorrected=2)
    gpu = replace(a100, ecc=replace(a100.ecc or EccInfo(), volatile=vol))
    (r,) = EccCheck().evaluate(snap([gpu]))
    assert (r.status, r.action, r.category) == (Status.FAIL, Action.RESET_GPU, Category.SRAM_ECC)


def test_reset_outranks_drain_when_both_apply() -> None:
    (a100,) = real(A100)
    drained = _ecc(a100, dram_corrected=30_000_000)
    assert drained.ecc is not None
    vol = replace(drained.ecc.volatile or EccCounts(), uncorrected=1)
    gpu = replace(drained, ecc=replace(drained.ecc, volatile=vol))
    (r,) = EccCheck().evaluate(snap([gpu]))
    assert r.action is Action.RESET_GPU and "corrected DRAM" in r.summary
