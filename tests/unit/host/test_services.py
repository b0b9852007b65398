"""Required daemons by process name, and by systemd unit where asked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hpresil.checks.services import ServicesCheck
from hpresil.config.host import ServicesConfig
from hpresil.errors import CommandError
from hpresil.host.procs import ZOMBIE, ProcInfo
from hpresil.host.services import ServiceFacts, ServicesSource
from hpresil.vocab import Action, Category, CheckResult, Status
from tests.unit.host.builders import snapshot

UP = [ProcInfo(1, "init", "sleeping"), ProcInfo(310, "munged", "sleeping"),
      ProcInfo(320, "slurmd", "sleeping")]  # fmt: skip


def judge(
    procs: list[ProcInfo],
    config: ServicesConfig | None = None,
    *,
    booted: bool = False,
    units: Mapping[str, str] | Exception | None = None,
) -> dict[str, CheckResult]:
    asked: list[Sequence[str]] = []

    def unit_states(names: Sequence[str], timeout: float) -> Mapping[str, str]:
        asked.append(names)
        if isinstance(units, Exception):
            raise units
        return units or {}

    src = ServicesSource(
        config, list_processes=lambda: procs, booted=lambda: booted, unit_states=unit_states
    )
    results = ServicesCheck(config).evaluate(snapshot(src.collect()))
    return {r.summary.split(":")[0]: r for r in results}


def test_running_daemons_are_ok() -> None:
    results = judge(UP)
    assert [r.summary for r in results.values()] == ["munged: running", "slurmd: running"]
    assert results["slurmd"].evidence["pids"] == [320]


def test_a_missing_daemon_fails_with_a_drain() -> None:
    results = judge(UP[:2])
    slurmd = results["slurmd"]
    assert (slurmd.status, slurmd.action, slurmd.category) == (
        Status.FAIL,
        Action.DRAIN,
        Category.HOST,
    )
    assert slurmd.summary == "slurmd: not running" and results["munged"].status is Status.OK


def test_a_zombie_is_not_a_running_daemon() -> None:
    results = judge([*UP[:2], ProcInfo(320, "slurmd", ZOMBIE)])
    assert results["slurmd"].status is Status.FAIL


def test_systemd_is_asked_only_when_configured_and_running_the_host() -> None:
    cfg = ServicesConfig(use_systemd=True)
    answers = {"munge.service": "active", "slurmd.service": "failed"}
    results = judge(UP, cfg, booted=True, units=answers)
    assert results["munged"].status is Status.OK
    assert results["slurmd"].status is Status.FAIL
    assert results["slurmd"].summary == "slurmd: unit slurmd.service is failed"
    assert {r.status for r in judge(UP, cfg, booted=False, units=answers).values()} == {Status.OK}
    assert {r.status for r in judge(UP, booted=True, units=answers).values()} == {Status.OK}


def test_systemctl_failing_leaves_the_process_verdict() -> None:
    error = CommandError(["systemctl", "is-active"], None, stderr="No such file or directory")
    results = judge(UP, ServicesConfig(use_systemd=True), booted=True, units=error)
    assert {r.status for r in results.values()} == {Status.OK}
    assert "could not be started" in results["munged"].evidence["systemd_error"]


def test_units_default_to_the_process_name() -> None:
    cfg = ServicesConfig(required=("munged", "nvidia-persistenced"))
    assert cfg.unit("munged") == "munge.service"
    assert cfg.unit("nvidia-persistenced") == "nvidia-persistenced.service"


def test_nothing_required_means_the_check_does_not_run() -> None:
    facts = ServicesSource(ServicesConfig(required=()), list_processes=lambda: UP).collect()
    assert not ServicesCheck().supported(snapshot(facts))


def test_a_failed_collection_is_unknown() -> None:
    (result,) = ServicesCheck().evaluate(snapshot(errors={ServiceFacts: "timed out"}))
    assert result.status is Status.UNKNOWN
