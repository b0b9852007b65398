"""The controller's commands to the agent (hpresil.agent.commands): given in the
answers to its reports, each run once, its results sent back as a report naming it.
The agent runs with GPUs in the NVML double and a stand-in nvidia-smi (a script here,
at the tool's own boundary) for the GPU reset."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hpresil.adapters.gpu.reset import reset
from hpresil.agent.commands import Commands
from hpresil.agent.service import Agent
from hpresil.api import NodeCommand
from hpresil.config import Config
from hpresil.vocab import CheckResult, Report, Status
from tests.unit.agent.fakes import FakeController
from tests.unit.agent.test_service import NODE, _config


def smi(tmp_path: Path, body: str) -> Path:
    """A stand-in nvidia-smi: records its arguments, then runs ``body``."""
    script = tmp_path / "nvidia-smi"
    script.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/smi.args\n{body}\n')
    script.chmod(0o755)
    return script


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def cfg(tmp_path: Path, nvml_double: object) -> Config:
    (tmp_path / "kmsg").mkdir()
    (tmp_path / "kmsg" / f"{NODE}.log").write_text("[    1.000000] Linux version 6.8\n")
    ok = smi(tmp_path, 'echo "GPU 00000000:19:00.0 was successfully reset."; echo "All done."')
    burnin = {"nccl": False, "gpu_burn": False, "dcgm_level": None, "duration_s": 0.1}
    return _config(tmp_path, gpu={"backend": "nvml", "smi_binary": str(ok)}).model_copy(
        update={"burnin": _config(tmp_path).burnin.model_copy(update=burnin)}
    )


@pytest.fixture
def ctl() -> FakeController:
    return FakeController()


@pytest.fixture
def agent(cfg: Config, ctl: FakeController) -> Iterator[Agent]:
    with Agent(cfg, NODE, ctl) as a:
        assert ctl.wait_for(lambda r: True, 3.0), "no first report"
        yield a


def answered(ctl: FakeController, command: int, timeout: float = 10.0) -> Report:
    found = ctl.wait_for(lambda r: r.command == command, timeout)
    assert found is not None, f"command #{command} not answered"
    return found


def test_a_reset_command_runs_nvidia_smi_once_and_its_results_come_back(
    agent: Agent, ctl: FakeController, tmp_path: Path
) -> None:
    ctl.commands = [NodeCommand(id=7, kind="reset_gpu", gpus=["00000000:19:00.0"])]
    agent.heartbeat()
    report = answered(ctl, 7)
    [done] = report.results
    assert (done.check, done.status) == ("gpu_reset", Status.OK)
    assert "successfully reset" in done.summary and report.digest is None
    time.sleep(1.0)  # more answers, all still giving command 7
    agent.heartbeat()
    agent.commands.join(5)
    assert (tmp_path / "smi.args").read_text() == "-r -i 00000000:19:00.0\n"  # run once
    assert sum(r.command == 7 for r in ctl.received) == 1


def test_a_burn_in_command_answers_the_burn_in_tiers_results(
    agent: Agent, ctl: FakeController
) -> None:
    ctl.commands = [NodeCommand(id=8, kind="burnin")]
    agent.heartbeat()
    report = answered(ctl, 8, timeout=30)
    checks = {r.check for r in report.results}
    assert {"burnin_matmul", "burnin_membw"} <= checks  # no CUDA here: unsupported, said so
    assert all(r.status is Status.UNSUPPORTED for r in report.results)


def test_a_refused_reset_is_a_fail_in_nvidia_smis_words(tmp_path: Path) -> None:
    busy = smi(
        tmp_path,
        'echo "GPU 00000000:19:00.0 is currently being used by one or more other processes'
        ' (e.g. Fabric Manager)." >&2; exit 255',
    )
    [outcome] = reset(["0"], binary=str(busy), timeout_s=10)
    assert not outcome.done and "Fabric Manager" in outcome.message
    [every] = reset([], binary=str(busy), timeout_s=10)
    assert every.target == "all"
    assert (tmp_path / "smi.args").read_text().splitlines() == ["-r -i 0", "-r"]
    [missing] = reset(["0"], binary=str(tmp_path / "absent"), timeout_s=10)
    assert not missing.done and missing.message


def test_a_command_that_raises_is_answered_unknown_and_the_next_still_runs() -> None:
    sent: dict[int, list[CheckResult]] = {}
    done = threading.Event()

    def send(command: int, results: list[CheckResult]) -> None:
        sent[command] = results
        if len(sent) == 2:
            done.set()

    def boom(command: NodeCommand) -> list[CheckResult]:
        raise RuntimeError("GPU library crashed")

    commands = Commands(send, {"burnin": boom, "reset_gpu": lambda c: []}, now)
    commands.offer([NodeCommand(id=1, kind="burnin"), NodeCommand(id=2, kind="reset_gpu")])
    assert done.wait(5)
    [unknown] = sent[1]
    assert unknown.status is Status.UNKNOWN and "GPU library crashed" in unknown.summary
    assert sent[2] == []
