"""gpu_burn: the parser on real outputs, the command line, and the verdicts."""

from __future__ import annotations

from pathlib import Path

from hpresil.burnin import gpu_burn
from hpresil.burnin.gpulib import NoGpuLibrary
from hpresil.burnin.judge import judge_gpu_burn
from hpresil.burnin.run import Which, run_burnin
from hpresil.config.burnin import BurninConfig
from hpresil.errors import CommandError
from hpresil.vocab import Action, Category, CheckResult, GpuIdentity, Status
from tests.unit.burnin.fakes import T0, FakeLibrary, Runner, clock, fixture, gpus, on_path

OK_1 = "gpu_burn/a2000-1gpu-ok.txt"
FAULTY_16 = "gpu_burn/v100-16gpu-faulty.txt"
ABORTED = "gpu_burn/k80-2gpu-aborted.txt"
INIT_ERROR = "gpu_burn/v100-8gpu-init-error-ok.txt"
A2000_UUID = "gpu-cfc454d6-f42b-1ba2-c01a-bca141734c4b"


def faulty(out: gpu_burn.Output) -> list[int]:
    """The indexes of the GPUs gpu_burn called FAULTY, in order."""
    return sorted(i for i, ok in out.verdicts.items() if not ok)


def test_parses_a_clean_run() -> None:
    out = gpu_burn.parse(fixture(OK_1))
    assert out.tested == 1 and out.verdicts == {0: True} and faulty(out) == []
    assert out.devices[0] == gpu_burn.Device(0, "NVIDIA RTX A2000 Embedded GPU", A2000_UUID)
    assert out.problem is None and not out.init_failed


def test_parses_faulty_verdicts() -> None:
    out = gpu_burn.parse(fixture(FAULTY_16))
    assert out.tested == 16 and faulty(out) == list(range(16))


def test_an_aborted_run_has_no_verdict_and_says_why() -> None:
    out = gpu_burn.parse(fixture(ABORTED))
    assert out.tested is None and out.verdicts == {}
    assert out.problem == 'Couldn\'t init a GPU test: Error in "load module":'
    assert out.init_failed and len(out.devices) == 2


def test_progress_repaints_with_carriage_returns_are_split() -> None:
    text = (
        "10.0%  proc'd: 1 (5 Gflop/s)\r20.0%  proc'd: 2 (5 Gflop/s)\rTested 1 GPUs:\r\tGPU 0: OK\r"
    )
    assert gpu_burn.parse(text).verdicts == {0: True}


def judged(name: str, known: list[GpuIdentity] | None = None) -> list[CheckResult]:
    return judge_gpu_burn(gpu_burn.parse(fixture(name)), known or [], 60, T0)


def test_faulty_gpus_fail_and_drain() -> None:
    results = judged(FAULTY_16, gpus(16, "Tesla V100-SXM3-32GB"))
    assert len(results) == 16
    assert {(r.status, r.action, r.category) for r in results} == {
        (Status.FAIL, Action.DRAIN, Category.PERF_DEGRADED)
    }
    assert [r.gpu.index for r in results if r.gpu] == list(range(16))
    assert results[3].summary == "GPU 3 (0000:1a:00): gpu_burn FAULTY (wrong results under load)"
    assert results[3].gpu == gpus(16, "Tesla V100-SXM3-32GB")[3]  # full identity, for RMA


def test_ok_verdicts_pass_and_are_matched_to_nvml_by_uuid() -> None:
    nvml = [GpuIdentity(index=5, uuid=A2000_UUID.upper(), serial="1650000001", name="x")]
    (r,) = judged(OK_1, nvml)
    assert r.status is Status.OK and r.gpu == nvml[0]
    assert r.evidence == {"verdict": "OK", "seconds": 60, "tested": 1}


def test_without_nvml_the_identity_comes_from_gpu_burn() -> None:
    (r,) = judged(OK_1)
    assert r.gpu == GpuIdentity(index=0, uuid=A2000_UUID, name="NVIDIA RTX A2000 Embedded GPU")


def test_ok_after_an_init_error_means_nothing() -> None:
    results = judged(INIT_ERROR)
    assert [r.status for r in results] == [Status.UNKNOWN] * 4
    assert "could not start (Couldn't init a GPU test: Error: CUDA_ERROR_UNKNOWN)" in (
        results[0].summary
    )


def test_no_verdict_is_unknown() -> None:
    (r,) = judged(ABORTED)
    assert r.status is Status.UNKNOWN and r.gpu is None
    assert r.summary == 'gpu_burn: Couldn\'t init a GPU test: Error in "load module":'


def test_the_command_line_passes_the_compare_file_beside_the_binary(tmp_path: Path) -> None:
    binary = tmp_path / "gpu_burn"
    binary.write_text("")
    cfg = BurninConfig(gpu_burn_s=300)
    assert gpu_burn.argv(cfg, str(binary)) == [str(binary), "-tc", "300"]
    (tmp_path / "compare.ptx").write_text("")
    assert gpu_burn.argv(cfg, str(binary)) == [
        str(binary),
        "-tc",
        "-c",
        str(tmp_path / "compare.ptx"),
        "300",
    ]
    explicit = BurninConfig(gpu_burn_tensor_cores=False, gpu_burn_compare="/opt/c.ptx")
    assert gpu_burn.argv(explicit, str(binary)) == [str(binary), "-c", "/opt/c.ptx", "60"]


def test_it_runs_under_a_timeout_with_pci_order() -> None:
    runner = Runner(fixture(OK_1))
    gpu_burn.run(
        BurninConfig(gpu_burn_s=30, gpu_burn_compare="/c.ptx"), "/opt/bin/gpu_burn", runner
    )
    argv, kw = runner.calls[0]
    assert argv == ["/opt/bin/gpu_burn", "-tc", "-c", "/c.ptx", "30"]
    assert kw == {"timeout": 150.0, "env": {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}, "check": False}


def no_library() -> FakeLibrary:
    raise NoGpuLibrary("no CUDA library/GPU (test)")


GPU_BURN_ONLY = on_path("gpu_burn")


def burn(runner: Runner, which: Which = GPU_BURN_ONLY) -> list[CheckResult]:
    cfg = BurninConfig(nccl=False)
    results = run_burnin(
        cfg, gpus(16), None, False, library=no_library, which=which, runner=runner, clock=clock
    )
    return [r for r in results if r.check == "burnin_gpu_burn"]


def test_run_burnin_reports_gpu_burn_per_gpu() -> None:
    results = burn(Runner(fixture(FAULTY_16)))
    assert len(results) == 16 and all(r.status is Status.FAIL for r in results)


def test_no_gpu_burn_on_path_is_unsupported() -> None:
    runner = Runner()
    (r,) = burn(runner, on_path())
    assert r.status is Status.UNSUPPORTED and r.summary == "gpu_burn not on PATH"
    assert runner.calls == []


def test_a_gpu_burn_that_cannot_start_is_unknown() -> None:
    (r,) = burn(Runner(raises=CommandError(["gpu_burn"], None, stderr="Permission denied")))
    assert r.status is Status.UNKNOWN and "could not be started" in r.summary
