"""The registry, plugin loading, and the runner's guard around each check."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pytest

from hpresil.assembly import agent_registry
from hpresil.checks.base import CheckRunner, DuplicateCheckError, Registry, load_plugins
from hpresil.checks.ecc import EccCheck
from hpresil.checks.gpu_presence import GpuPresenceCheck
from hpresil.checks.xid import XidCheck
from hpresil.config import Config
from hpresil.vocab import CheckResult, Status
from hpresil.vocab.snapshot import Snapshot
from tests.unit.checks.builders import AT, snapshot


@dataclass
class FakeCheck:
    name: str = "fake"
    tags: frozenset[str] = frozenset({"quick"})
    interval_s: float = 0.0
    timeout_s: float = 1.0
    behaviour: str = "ok"  # ok | raise | hang | unsupported
    calls: int = 0
    release: threading.Event = field(default_factory=threading.Event)

    def supported(self, snapshot: Snapshot) -> bool:
        return self.behaviour != "unsupported"

    def evaluate(self, snapshot: Snapshot) -> list[CheckResult]:
        self.calls += 1
        if self.behaviour == "raise":
            raise RuntimeError("sensor on fire")
        if self.behaviour == "hang":
            self.release.wait(10)
        return [CheckResult(check=self.name, status=Status.OK, observed_at=snapshot.taken_at)]


def test_registry_refuses_a_duplicate_name() -> None:
    registry = Registry([FakeCheck("a")])
    with pytest.raises(DuplicateCheckError, match="'a' is already registered"):
        registry.register(FakeCheck("a"))
    assert registry.names() == ["a"]


def test_the_agents_checks_start_with_xid_presence_and_ecc() -> None:
    registry = agent_registry(Config(), plugins=False)
    assert registry.names()[:3] == ["xid", "gpu_presence", "ecc"]
    assert registry.select("event")[0].name == "xid"


def test_select_by_tag() -> None:
    registry = Registry(
        [FakeCheck("a", tags=frozenset({"quick"})), FakeCheck("b", tags=frozenset({"burnin"}))]
    )
    assert [c.name for c in registry.select("burnin")] == ["b"]
    assert len(registry.select()) == 2


def _ep(name: str, value: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=value, group="hpresil.checks")


class PluginCheck(FakeCheck):
    def __init__(self) -> None:
        super().__init__(name="plugin_ok")


def plugin_pair() -> list[Any]:
    return [FakeCheck("pair_a"), FakeCheck("pair_b")]


def test_plugins_load_defensively(caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry([XidCheck(), GpuPresenceCheck(), EccCheck()])
    here = __name__
    added = load_plugins(
        registry,
        [
            _ep("good_class", f"{here}:PluginCheck"),
            _ep("good_factory", f"{here}:plugin_pair"),
            _ep("missing", "no_such_module_xyz:Check"),
            _ep("duplicate", "hpresil.checks.xid:XidCheck"),
            _ep("not_a_check", "os:sep"),
        ],
    )
    assert added == ["plugin_ok", "pair_a", "pair_b"]
    skipped = {r.getMessage().split()[2] for r in caplog.records if "skipped" in r.getMessage()}
    assert skipped == {"missing", "duplicate", "not_a_check"}
    assert registry.names()[:3] == ["xid", "gpu_presence", "ecc"]


def test_runner_turns_an_exception_into_unknown() -> None:
    runner = CheckRunner(Registry([FakeCheck("boom", behaviour="raise"), FakeCheck("fine")]))
    results = runner.run(snapshot())
    assert [(r.check, r.status) for r in results] == [("boom", Status.UNKNOWN), ("fine", Status.OK)]
    assert "sensor on fire" in results[0].summary and results[0].observed_at == AT


def test_runner_times_out_a_hung_check_and_does_not_start_it_twice() -> None:
    hung = FakeCheck("slow", behaviour="hang", timeout_s=0.2)
    runner = CheckRunner(Registry([hung, FakeCheck("fine")]))
    start = time.monotonic()
    first = runner.run(snapshot())
    assert time.monotonic() - start < 2
    assert [(r.check, r.status) for r in first] == [("slow", Status.UNKNOWN), ("fine", Status.OK)]
    assert "timed out after 0.2 s" in first[0].summary
    second = runner.run(snapshot())
    assert "still running" in second[0].summary and hung.calls == 1
    hung.release.set()
    time.sleep(0.1)
    third = runner.run(snapshot())
    assert third[0].status is Status.OK and hung.calls == 2


def test_runner_skips_unsupported_checks() -> None:
    runner = CheckRunner(Registry([FakeCheck("no", behaviour="unsupported")]))
    assert runner.run(snapshot()) == []


def test_runner_keeps_results_until_the_interval_elapsed() -> None:
    now = [100.0]
    check = FakeCheck("slowpoke", interval_s=60)
    runner = CheckRunner(Registry([check]), clock=lambda: now[0])
    first = runner.run(snapshot())
    now[0] += 30
    assert runner.run(snapshot()) == first and check.calls == 1
    now[0] += 31
    runner.run(snapshot())
    assert check.calls == 2
