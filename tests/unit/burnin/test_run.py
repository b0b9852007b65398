"""run_burnin: per-GPU kernels through a fake library, judged against the references."""

from __future__ import annotations

from hpresil.burnin.gpulib import NoGpuLibrary
from hpresil.burnin.run import run_burnin
from hpresil.config.burnin import BurninConfig
from hpresil.vocab import Action, CheckResult, Status
from tests.unit.burnin.fakes import (
    H100,
    FakeKernel,
    FakeLibrary,
    Runner,
    clock,
    gpus,
    kernels,
    on_path,
)

QUICK = BurninConfig(duration_s=0.5, membw_duration_s=0.2, nccl=False, gpu_burn=False)


def burn(lib: FakeLibrary, cfg: BurninConfig = QUICK, **kw: object) -> list[CheckResult]:
    args = {"gpus": gpus(len(lib.kernels)), "median": None, **kw}
    return run_burnin(cfg, progress=False, library=lib, which=on_path(), clock=clock, **args)  # type: ignore[arg-type]


def by(results: list[CheckResult], check: str) -> dict[int, CheckResult]:
    return {r.gpu.index: r for r in results if r.check == check and r.gpu is not None}


def test_healthy_h100s_pass_on_every_gpu() -> None:
    results = burn(FakeLibrary(kernels(8)))
    assert len(results) == 16
    assert {r.status for r in results} == {Status.OK}
    matmul, membw = by(results, "burnin_matmul"), by(results, "burnin_membw")
    assert matmul[0].evidence["tflops"] == 790.0 and membw[0].evidence["membw_gbps"] == 2950.0
    assert matmul[0].evidence["expected"] == 795.0 and membw[0].evidence["expected"] == 2903.0
    assert matmul[0].evidence["node_median"] == 790.0
    assert matmul[0].evidence["library"] == "fake" and matmul[0].evidence["dtype"] == "bf16"
    assert matmul[0].evidence["size"] == 8192 and matmul[0].evidence["iterations"] > 0
    assert membw[0].evidence["bytes"] == 1 << 30
    assert matmul[5].gpu == gpus(8)[5]  # NVML's identity (serial, UUID) is attached


def test_one_slow_gpu_fails_on_its_own() -> None:
    ks = kernels(8)
    ks[6] = FakeKernel(600.0, 2950.0, bus="0000:1d:00")
    matmul = by(burn(FakeLibrary(ks)), "burnin_matmul")
    assert matmul[6].status is Status.FAIL and matmul[6].action is Action.DRAIN
    assert "75% of the expected" in matmul[6].summary
    assert matmul[6].evidence["ratio_node_median"] < 0.9
    assert all(matmul[i].status is Status.OK for i in range(8) if i != 6)


def test_the_node_median_catches_a_slow_gpu_of_an_unknown_model() -> None:
    ks = kernels(4, name="NVIDIA Future GPU")
    ks[1] = FakeKernel(600.0, 2950.0, name="NVIDIA Future GPU", bus="0000:18:00")
    matmul = by(burn(FakeLibrary(ks), gpus=gpus(4, "NVIDIA Future GPU")), "burnin_matmul")
    assert matmul[1].status is Status.FAIL and "of the node median" in matmul[1].summary
    assert matmul[0].status is Status.OK and matmul[0].evidence["expected"] is None


def test_the_fleet_median_is_a_reference_when_the_controller_gives_one() -> None:
    lib = FakeLibrary(kernels(2, 800.0, name="NVIDIA Future GPU"))
    known = gpus(2, "NVIDIA Future GPU")
    alone = by(burn(lib, gpus=known), "burnin_matmul")
    assert alone[0].status is Status.UNKNOWN  # two GPUs, no model figure: nothing to compare
    fleet = {"NVIDIA Future GPU": {"tflops": 1000.0, "membw_gbps": 2900.0}}
    judged = burn(
        FakeLibrary(kernels(2, 800.0, name="NVIDIA Future GPU")), gpus=known, median=fleet
    )
    assert by(judged, "burnin_matmul")[0].status is Status.FAIL
    assert by(judged, "burnin_membw")[0].status is Status.OK


def test_cuda_devices_are_matched_to_nvml_by_pci_address() -> None:
    known = list(reversed(gpus(4)))  # whatever the order NVML listed them in
    results = burn(FakeLibrary(kernels(4)), gpus=known)
    for index, r in by(results, "burnin_matmul").items():
        assert r.gpu is not None and r.gpu.pci_bus_id == f"0000:{0x17 + index:02x}:00"
        assert r.gpu.serial == f"165{index:07d}"


def test_without_nvml_identities_come_from_the_library() -> None:
    results = burn(FakeLibrary(kernels(2)), gpus=[None, None])
    gpu = by(results, "burnin_matmul")[1].gpu
    assert gpu is not None and (gpu.name, gpu.pci_bus_id, gpu.serial) == (H100, "0000:18:00", None)


def test_a_gpu_failing_mid_run_is_unknown_and_the_others_go_on() -> None:
    ks = kernels(3)
    ks[1].fail = "copy"
    results = burn(FakeLibrary(ks))
    assert by(results, "burnin_matmul")[1].status is Status.OK
    membw = by(results, "burnin_membw")[1]
    assert membw.status is Status.UNKNOWN and "illegal memory access" in membw.summary
    assert by(results, "burnin_membw")[2].status is Status.OK
    assert all(k.closed for k in ks)


def test_a_gpu_that_cannot_start_is_unknown() -> None:
    results = burn(FakeLibrary(kernels(2), refuse={0}))
    r = by(results, "burnin_matmul")[0]
    assert r.status is Status.UNKNOWN and "could not start: CUDA out of memory" in r.summary
    assert by(results, "burnin_matmul")[1].status is Status.OK


def test_expected_figures_are_for_bf16_and_fp16_only() -> None:
    lib = FakeLibrary(kernels(2, 60.0, dtype="fp32"))  # a GPU without bf16/fp16 GEMMs
    matmul = by(burn(lib), "burnin_matmul")
    assert matmul[0].evidence["dtype"] == "fp32" and matmul[0].evidence["expected"] is None
    assert matmul[0].status is Status.UNKNOWN


def test_settings_reach_the_kernels() -> None:
    lib = FakeLibrary(kernels(1))
    cfg = QUICK.model_copy(update={"matmul_size": 4096, "membw_mib": 256, "warmup_iterations": 2})
    burn(lib, cfg)
    k = lib.kernels[0]
    assert (k.size, k.copy_bytes) == (4096, 256 << 20)
    assert k.calls[0] == ("gemm", 2) and ("copy", 2) in k.calls


def test_no_gpu_library_is_unsupported_never_a_failure() -> None:
    def none() -> FakeLibrary:
        raise NoGpuLibrary("no CUDA library/GPU (torch not installed; cupy not installed)")

    cfg = BurninConfig()
    results = run_burnin(
        cfg, [], None, False, library=none, which=on_path(), runner=Runner(), clock=clock
    )
    assert [(r.check, r.status) for r in results] == [
        ("burnin_matmul", Status.UNSUPPORTED),
        ("burnin_membw", Status.UNSUPPORTED),
        ("burnin_nccl", Status.UNSUPPORTED),
        ("burnin_gpu_burn", Status.UNSUPPORTED),
    ]
    assert results[0].summary.startswith("no CUDA library/GPU")


def test_a_library_without_gpus_is_unsupported() -> None:
    results = burn(FakeLibrary([]))
    assert {r.status for r in results} == {Status.UNSUPPORTED}
    assert results[0].summary == "no CUDA GPU visible to fake"
