"""all_reduce_perf: the parser on real outputs, the command line, and the verdicts."""

from __future__ import annotations

import pytest

from hpresil.burnin import nccl
from hpresil.burnin.expected import GIB
from hpresil.burnin.gpulib import NoGpuLibrary
from hpresil.burnin.judge import Floor, judge_nccl
from hpresil.burnin.names import BUSBW_GBPS
from hpresil.burnin.run import Which, run_burnin
from hpresil.config.burnin import BurninConfig
from hpresil.errors import CommandError
from hpresil.vocab import Action, Category, CheckResult, Status
from tests.unit.burnin.fakes import T0, FakeLibrary, Runner, clock, fixture, gpus, on_path

H200_OK = "nccl/h200-16gpu-2node-1g-16g-ok.txt"
H100_OK = "nccl/h100-16gpu-2node-8b-8g-ok.txt"
WRONG = "nccl/gh200-2gpu-2node-wrong.txt"
BUSY = "nccl/gh200-8gpu-busy.txt"
ONLY_NCCL = BurninConfig(gpu_burn=False)
NCCL_ONLY = on_path("all_reduce_perf")


def test_parses_a_16_gib_run_on_h200() -> None:
    out = nccl.parse(fixture(H200_OK))
    assert [r.size for r in out.rows] == [GIB << k for k in range(5)]
    largest = out.largest
    assert largest is not None and largest.size == 16 * GIB
    assert (largest.busbw_out, largest.busbw_in) == (478.15, 479.26)
    assert largest.busbw == pytest.approx((478.15 + 479.26) / 2)
    assert out.avg_busbw_gbps == 467.089
    assert out.devices == 16 and out.out_of_bounds == 0 and out.wrong == 0
    assert out.failure is None


def test_parses_a_sweep_whose_average_includes_tiny_messages() -> None:
    out = nccl.parse(fixture(H100_OK))
    assert len(out.rows) == 31 and out.rows[0].size == 8
    assert out.avg_busbw_gbps == 70.742  # dragged down by the small sizes
    assert out.largest is not None and out.largest.busbw_out == 338.82


def test_counts_wrong_values_from_the_column() -> None:
    out = nccl.parse(fixture(WRONG))
    bad = [r for r in out.rows if r.wrong]
    assert [(r.size, r.wrong_out, r.wrong_in) for r in bad] == [(1048576, 96, 32)]
    assert out.out_of_bounds == 4
    assert out.wrong == 128
    assert out.failure is not None and "Test failure common.cu:1189" in out.failure


def test_a_run_that_never_started_has_no_rows_and_names_the_failure() -> None:
    out = nccl.parse(fixture(BUSY))
    assert out.rows == () and out.avg_busbw_gbps is None and out.devices == 8
    assert out.failure is not None and "busy or unavailable" in out.failure


def test_srun_labels_and_float_wrong_columns_are_understood() -> None:
    labelled = "\n".join(f"0: {line}" for line in fixture(H200_OK).splitlines())
    assert nccl.parse(labelled) == nccl.parse(fixture(H200_OK))
    # some versions print large counts in %g: not a count, the out-of-bounds line is
    text = fixture(WRONG).replace("      96   492.81", " 9.6e+01   492.81")
    assert nccl.parse(text).wrong == 32


def test_the_command_line_and_how_it_is_run() -> None:
    runner = Runner(fixture(H200_OK))
    nccl.run(BurninConfig(), "/opt/bin/all_reduce_perf", 8, runner)
    argv, kw = runner.calls[0]
    assert argv == ["/opt/bin/all_reduce_perf", "-b", "16G", "-e", "16G", "-f", "2", "-g", "8"]
    assert kw == {"timeout": 900.0, "env": {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}, "check": False}


def judge(name: str, rc: int = 0, floor: Floor | None = None, n: int = 8) -> tuple[Status, str]:
    r = judge_nccl(nccl.parse(fixture(name)), returncode=rc, ngpus=n, floor=floor, at=T0)
    return r.status, r.summary


def test_wrong_values_fail_whatever_the_exit_status() -> None:
    r = judge_nccl(nccl.parse(fixture(WRONG)), returncode=1, ngpus=2, floor=None, at=T0)
    assert (r.status, r.action, r.category) == (Status.FAIL, Action.DRAIN, Category.PERF_DEGRADED)
    assert "128 wrong values" in r.summary and r.evidence["wrong"] == 128


def test_a_failed_run_without_results_is_unknown() -> None:
    status, summary = judge(BUSY, rc=1)
    assert status is Status.UNKNOWN and "busy or unavailable" in summary


def test_bus_bandwidth_against_the_floor() -> None:
    assert judge(H200_OK, floor=Floor(431.0, "H200 SXM"))[0] is Status.OK
    status, summary = judge(H200_OK, floor=Floor(500.0, "config"))
    assert status is Status.FAIL and "under the floor of 500 GB/s" in summary
    assert judge(H200_OK)[0] is Status.OK  # no floor known: reported, not judged


def no_library() -> FakeLibrary:
    raise NoGpuLibrary("no CUDA library/GPU (test)")


def nccl_result(
    runner: Runner,
    cfg: BurninConfig = ONLY_NCCL,
    n: int = 8,
    model: str = "NVIDIA H200",
    which: Which = NCCL_ONLY,
) -> CheckResult:
    results = run_burnin(
        cfg,
        gpus(n, model),
        None,
        False,
        library=no_library,
        which=which,
        runner=runner,
        clock=clock,
    )
    (found,) = [r for r in results if r.check == "burnin_nccl"]
    return found


def test_an_8_gpu_h200_node_is_held_to_azures_floor() -> None:
    r = nccl_result(Runner(fixture(H200_OK)))
    assert r.status is Status.OK
    assert r.evidence[BUSBW_GBPS] == pytest.approx(478.705)
    assert r.evidence["floor_gbps"] == 431.0
    assert r.evidence["floor_source"] == "H200 SXM, 8 GPUs, 16 GiB"


@pytest.mark.parametrize(
    ("name", "n", "model", "why"),
    [
        (H200_OK, 4, "NVIDIA H200", "the floor is for 8 GPUs"),
        (H100_OK, 8, "NVIDIA H100 80GB HBM3", "the floor is for 16 GiB messages, this ran 8 GiB"),
        (H200_OK, 8, "NVIDIA L40S", "no floor for the model"),
    ],
)
def test_the_built_in_floor_applies_only_where_its_source_measured(
    name: str, n: int, model: str, why: str
) -> None:
    r = nccl_result(Runner(fixture(name)), n=n, model=model)
    assert r.status is Status.OK, why
    assert r.evidence["floor_gbps"] is None and "no floor" in r.summary


@pytest.mark.parametrize("key", ["h100_sxm", "NVIDIA H100 80GB HBM3"])
def test_a_configured_floor_applies_by_model_key_or_gpu_name(key: str) -> None:
    cfg = BurninConfig(gpu_burn=False, floors={key: 460.0})
    r = nccl_result(Runner(fixture(H100_OK)), cfg, model="NVIDIA H100 80GB HBM3")
    assert (r.status, r.action, r.category) == (Status.FAIL, Action.DRAIN, Category.PERF_DEGRADED)
    assert "338.1 GB/s" in r.summary and "under the floor of 460 GB/s" in r.summary
    assert r.evidence["floor_source"] == f"floors.{key} in the configuration"


def test_no_all_reduce_perf_on_path_is_unsupported() -> None:
    runner = Runner()
    r = nccl_result(runner, which=on_path())
    assert r.status is Status.UNSUPPORTED and "all_reduce_perf not on PATH" in r.summary
    assert runner.calls == []


def test_no_gpus_is_unsupported() -> None:
    r = nccl_result(Runner(), n=0)
    assert r.status is Status.UNSUPPORTED


def test_a_hung_all_reduce_is_unknown() -> None:
    hung = CommandError(["all_reduce_perf"], None, timed_out=True, timeout=900.0)
    r = nccl_result(Runner(raises=hung))
    assert r.status is Status.UNKNOWN and "timed out after 900 s" in r.summary
