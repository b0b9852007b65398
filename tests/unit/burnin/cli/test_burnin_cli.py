"""``hpresil burnin``: table, --json and exit status, with fake kernels; against a live
controller for the fleet median and the report."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hpresil import config as config_module
from hpresil.auth import BearerToken
from hpresil.burnin.gpulib import NoGpuLibrary
from hpresil.cli.burnin import burnin, execute, exit_code
from hpresil.client import ControllerClient
from hpresil.config import AgentConfig, Config, GpuConfig
from hpresil.config.burnin import BurninConfig
from hpresil.vocab import CheckResult, Report, Status
from tests.unit.burnin.fakes import T0, FakeKernel, FakeLibrary, clock, gpus, kernels, on_path
from tests.unit.controller.fakes import TOKEN

QUICK = BurninConfig(duration_s=0.3, membw_duration_s=0.1, nccl=False, gpu_burn=False)
FUTURE = "NVIDIA Future GPU"


def offline(node: str = "gpu01") -> Config:
    return Config(agent=AgentConfig(node=node))


def no_library() -> FakeLibrary:
    raise NoGpuLibrary("no CUDA library/GPU (test)")


def run(
    cfg: Config,
    lib: Callable[[], FakeLibrary],
    *,
    as_json: bool,
    settings: BurninConfig = QUICK,
    **kw: Any,
) -> int:
    args: dict[str, Any] = {"gpus": gpus(2), "which": on_path(), "clock": clock, **kw}
    return execute(cfg, settings, as_json=as_json, library=lib, **args)


def test_json_output_and_exit_0_when_healthy(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(offline(), FakeLibrary(kernels(2)), as_json=True, offline=True) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["node"], out["verdict"], out["exit_code"], out["reported"]) == (
        "gpu01",
        "healthy",
        0,
        False,
    )
    results = [CheckResult.model_validate(r) for r in out["results"]]
    assert [(r.check, r.gpu.index if r.gpu else None) for r in results] == [
        ("burnin_matmul", 0),
        ("burnin_membw", 0),
        ("burnin_matmul", 1),
        ("burnin_membw", 1),
    ]
    assert results[0].evidence["tflops"] == 790.0


def test_a_table_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    ks = kernels(2)
    ks[1] = FakeKernel(600.0, 2950.0, bus="0000:18:00")
    assert run(offline(), FakeLibrary(ks), as_json=False, offline=True) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "burn-in on gpu01: unhealthy" in out
    assert "790.0 TFLOPS" in out and "600.0 TFLOPS" in out and "2,950 GB/s" in out
    assert "75% of the expected" in out


def test_nothing_measurable_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    settings = BurninConfig()  # nccl-tests and gpu_burn asked for, not installed
    code = run(offline(), no_library, as_json=True, offline=True, settings=settings)
    assert code == 2
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "could not check"
    assert {r["status"] for r in out["results"]} == {"unsupported"}


def result(status: Status) -> CheckResult:
    return CheckResult(check="burnin_matmul", status=status, observed_at=T0)


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ([Status.OK, Status.UNSUPPORTED], 0),
        ([Status.OK, Status.UNKNOWN], 2),
        ([Status.UNKNOWN, Status.FAIL], 1),
        ([Status.UNSUPPORTED], 2),
        ([], 2),
    ],
)
def test_exit_status(statuses: list[Status], code: int) -> None:
    assert exit_code([result(s) for s in statuses]) == code


def test_without_a_token_it_runs_offline_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = offline().model_copy(
        update={"controller": Config().controller.model_copy(update={"token_file": tmp_path / "x"})}
    )
    assert run(cfg, FakeLibrary(kernels(2)), as_json=True) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["reported"] is False
    assert "burnin: controller not configured" in captured.err


def live(config: Path, node: str = "node1") -> Config:
    cfg = config_module.load(config)
    return cfg.model_copy(update={"agent": cfg.agent.model_copy(update={"node": node})})


def test_an_unreachable_controller_is_noted_and_the_burn_in_goes_on(
    config_for: Callable[[str, int], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = live(config_for("http://127.0.0.1:9", 0o600))
    assert run(cfg, FakeLibrary(kernels(2)), as_json=True) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["reported"] is False
    assert "burnin: no fleet median" in captured.err and "unreachable" in captured.err


def test_judged_against_the_fleet_median_and_reported(
    config: Path, controller: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with ControllerClient(controller, BearerToken(TOKEN)) as client:
        fleet = [
            CheckResult(
                check="burnin_matmul",
                status=Status.OK,
                gpu=g,
                evidence={"tflops": 1000.0, "dtype": "bf16", "size": 8192},
                observed_at=T0,
            )
            for g in gpus(4, FUTURE)
        ]
        client.post_report(
            Report(report_id="earlier-node2", node="node2", seq=0, sent_at=T0, results=tuple(fleet))
        )
        lib = FakeLibrary(kernels(2, 800.0, name=FUTURE))  # no expected figure for this model
        code = run(live(config), lib, as_json=True, gpus=gpus(2, FUTURE))
        assert code == 1
        out = json.loads(capsys.readouterr().out)
        assert out["reported"] is True
        failed = [r for r in out["results"] if r["status"] == "fail"]
        assert [(r["check"], r["gpu"]["index"]) for r in failed] == [
            ("burnin_matmul", 0),
            ("burnin_matmul", 1),
        ]
        assert failed[0]["evidence"]["fleet_median"] == 1000.0
        # stored like any check: the node is unhealthy and has an incident for it
        (node1,) = [n for n in client.nodes() if n.name == "node1"]
        assert node1.health.value == "fail" and node1.open_incident is not None
        incident = client.incident(node1.open_incident)
        assert incident.category.value == "perf_degraded" and incident.gpu is not None
        # and node1's figures now count in the fleet median
        assert client.burnin_median(FUTURE, "bf16", 8192).metrics["tflops"].samples == 6


@pytest.mark.skipif(
    find_spec("torch") is not None or find_spec("cupy") is not None,
    reason="a real GPU library would run a real burn-in",
)
def test_the_command_options_and_exit_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    monkeypatch.delenv("NVML_DOUBLE_STATE", raising=False)  # no driver: NVML cannot start
    cfg = Config(agent=AgentConfig(node="gpu01", gpu=GpuConfig(backend="nvml")))
    args = ["--offline", "--no-nccl", "--no-gpu-burn", "--duration", "1", "--size", "64", "--json"]
    answer = CliRunner().invoke(burnin, args, obj=cfg)
    assert answer.exit_code == 2, answer.output
    out = json.loads(answer.stdout)
    assert [r["check"] for r in out["results"]] == ["burnin_matmul", "burnin_membw"]
    assert out["verdict"] == "could not check"


def test_every_option_has_help() -> None:
    assert (burnin.help or "").strip()
    for param in burnin.params:
        assert getattr(param, "help", None), param.name
