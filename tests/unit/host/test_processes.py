"""D-state processes tracked across ticks with an injected clock; zombies counted."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from hpresil.checks.processes import ProcessesCheck
from hpresil.config.host import ProcessesConfig
from hpresil.host.processes import ProcessesSource, ProcessFacts
from hpresil.host.procs import DISK_SLEEP, ZOMBIE, ProcInfo, list_processes
from hpresil.vocab import Action, Category, CheckResult, Status
from tests.unit.host.builders import Clock, snapshot

RUNNING = [ProcInfo(1, "systemd", "sleeping"), ProcInfo(900, "slurmd", "sleeping")]


class Table:
    """A process table the test edits between ticks."""

    def __init__(self) -> None:
        self.procs = list(RUNNING)

    def __call__(self) -> list[ProcInfo]:
        return list(self.procs)


def setup(**config: object) -> tuple[Table, Clock, ProcessesSource, ProcessesCheck]:
    cfg = ProcessesConfig.model_validate(config)
    table, clock = Table(), Clock()
    src = ProcessesSource(cfg, clock=clock, list_processes=table)
    return table, clock, src, ProcessesCheck(cfg)


def d_state(check: ProcessesCheck, src: ProcessesSource) -> CheckResult:
    return check.evaluate(snapshot(src.collect()))[0]


def test_a_quiet_table_is_ok() -> None:
    _, _, src, check = setup()
    d, zombies = check.evaluate(snapshot(src.collect()))
    assert d.summary == "D state: no process stuck in uninterruptible sleep"
    assert zombies.summary == "zombies: fewer than 200"
    assert {d.status, zombies.status} == {Status.OK}


def test_a_process_stuck_in_d_warns_then_fails() -> None:
    table, clock, src, check = setup()
    table.procs.append(ProcInfo(4242, "cat", DISK_SLEEP, create_time=1000.0))
    assert d_state(check, src).status is Status.OK  # brief D is ordinary I/O
    clock.advance(130)
    warned = d_state(check, src)
    assert (warned.status, warned.action) == (Status.WARN, Action.WATCH)
    assert warned.summary == "D state: in D over 120 s: cat[4242]"
    clock.advance(500)
    failed = d_state(check, src)
    assert (failed.status, failed.action, failed.category) == (
        Status.FAIL,
        Action.DRAIN,
        Category.HOST,
    )
    assert failed.summary == "D state: stuck over 600 s: cat[4242]"
    assert failed.evidence["d_state"] == [{"pid": 4242, "name": "cat", "in_d_s": 630.0}]


def test_leaving_d_or_a_reused_pid_starts_the_clock_afresh() -> None:
    table, clock, src, check = setup()
    table.procs.append(ProcInfo(4242, "cat", DISK_SLEEP, create_time=1000.0))
    src.collect()
    clock.advance(300)
    table.procs[-1] = ProcInfo(4242, "ls", DISK_SLEEP, create_time=2000.0)  # pid reused
    assert d_state(check, src).status is Status.OK
    table.procs[-1] = ProcInfo(4242, "ls", "running", create_time=2000.0)
    src.collect()
    clock.advance(300)
    table.procs[-1] = ProcInfo(4242, "ls", DISK_SLEEP, create_time=2000.0)
    (stuck,) = src.collect().d_state
    assert stuck.in_d_s == 0 and not stuck.persisting


def test_many_processes_staying_in_d_warn() -> None:
    table, clock, src, check = setup(d_state_warn_count=3)
    table.procs += [ProcInfo(100 + i, "python", DISK_SLEEP) for i in range(3)]
    assert d_state(check, src).status is Status.OK  # first sighting: not persisting yet
    clock.advance(5)
    warned = d_state(check, src)
    assert warned.status is Status.WARN
    assert warned.summary.startswith("D state: 3 or more processes staying in D: python[100]")


def test_zombies_warn_and_name_their_parent() -> None:
    table, _, src, check = setup(zombie_warn_count=3)
    table.procs += [ProcInfo(200 + i, "worker", ZOMBIE, ppid=777) for i in range(3)]
    _, zombies = check.evaluate(snapshot(src.collect()))
    assert (zombies.status, zombies.summary) == (
        Status.WARN,
        "zombies: 3 or more, most under pid 777",
    )
    assert zombies.evidence["parents"] == [{"ppid": 777, "zombies": 3}]


def test_ignored_names_are_not_judged() -> None:
    table, clock, src, check = setup(ignore_names=("nv_queue",))
    table.procs.append(ProcInfo(55, "nv_queue", DISK_SLEEP))
    src.collect()
    clock.advance(3600)
    assert d_state(check, src).status is Status.OK


def test_the_real_process_table_holds_this_process() -> None:
    assert any(p.pid == os.getpid() for p in list_processes())
    facts = ProcessesSource().collect()
    assert facts.total > 0


def test_a_failed_collection_is_unknown() -> None:
    (result,) = ProcessesCheck().evaluate(snapshot(errors={ProcessFacts: "timed out"}))
    assert result.status is Status.UNKNOWN


def test_failing_sooner_than_warning_is_refused() -> None:
    with pytest.raises(ValidationError, match="d_state_fail_s"):
        ProcessesConfig(d_state_warn_s=600, d_state_fail_s=60)


def test_shared_process_table_lists_once_per_ttl() -> None:
    from hpresil.host.procs import ProcInfo, SharedProcessTable

    calls = []
    now = [100.0]

    def lister() -> list[ProcInfo]:
        calls.append(now[0])
        return [ProcInfo(pid=1, name="init", status="sleeping")]

    table = SharedProcessTable(lister, ttl_s=1.0, clock=lambda: now[0])
    assert table() == table() == [ProcInfo(pid=1, name="init", status="sleeping")]
    assert len(calls) == 1
    now[0] += 1.5
    table()
    assert len(calls) == 2
