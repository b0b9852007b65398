"""The agent's parts on their own: the verdict cache, coalesced requests, and the
spool totals in the agent's stop line."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hpresil.agent.coalesce import Coalesced
from hpresil.agent.service import Agent
from hpresil.agent.verdict_cache import CACHE_REFRESH_S, EVENT_HOLD_S, VerdictCache
from hpresil.config import Config, parse
from hpresil.vocab import Action, CheckResult, Status
from tests.nvmldouble import NvmlDouble
from tests.unit.agent.fakes import FakeController

NODE = "node1"
AT = datetime(2025, 1, 1, tzinfo=UTC)


def _result(check: str, status: Status, action: Action = Action.NONE, **kw: object) -> CheckResult:
    return CheckResult.model_validate(
        {"check": check, "status": status, "action": action, "observed_at": AT, **kw}
    )


class Clock:
    """Stands in for ``time.monotonic`` in the verdict cache."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_verdict_is_the_worst_state_and_events_are_listed_apart(tmp_path: Path) -> None:
    path, clock = tmp_path / "verdict.json", Clock()
    cache = VerdictCache(path, NODE, clock=clock)
    state = [_result("ecc", Status.WARN, Action.WATCH), _result("ib", Status.UNSUPPORTED)]
    event = _result("xid", Status.FAIL, Action.RESET_GPU, xid=79)
    cache.update(AT, state, [event], changed=True)
    data = json.loads(path.read_text())
    assert (data["node"], data["status"], data["action"]) == (NODE, "warn", "watch")
    assert [r["check"] for r in data["results"]] == ["ecc", "ib"]
    assert [r["xid"] for r in data["recent_events"]] == [79]

    clock.now += EVENT_HOLD_S + 1  # the event's hold is over
    cache.update(AT, state, [], changed=True)
    assert json.loads(path.read_text())["recent_events"] == []


def test_an_unchanged_verdict_is_rewritten_only_to_stay_fresh(tmp_path: Path) -> None:
    path, clock = tmp_path / "verdict.json", Clock()
    cache = VerdictCache(path, NODE, clock=clock)
    state = [_result("ecc", Status.OK)]
    cache.update(AT, state, [], changed=True)
    path.unlink()
    clock.now += CACHE_REFRESH_S / 2
    cache.update(AT, state, [], changed=False)
    assert not path.exists()
    cache.update(AT, state, [_result("xid", Status.FAIL, Action.DRAIN, xid=48)], changed=False)
    assert path.exists(), "a new event is written at once"
    path.unlink()
    clock.now += CACHE_REFRESH_S
    cache.update(AT, state, [], changed=False)
    assert path.exists()


def test_requests_during_a_call_run_it_once_more() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            started.set()
            release.wait(5.0)

    job = Coalesced(slow)
    first = threading.Thread(target=job)
    first.start()
    assert started.wait(5.0)
    for _ in range(5):
        job()  # returns at once: the running call will run it again
    release.set()
    first.join(5.0)
    assert calls == [0, 1]
    assert job.__name__ == "slow"


def _config(root: Path) -> Config:
    (root / "kmsg").mkdir()
    (root / "kmsg" / f"{NODE}.log").write_text("[    1.000000] Linux version 6.8\n")
    return parse(
        {
            "controller": {"url": "http://127.0.0.1:9", "token_file": str(root / "token")},
            "agent": {
                "spool_dir": str(root / "spool" / "{node}"),
                "cache_file": str(root / "run" / "{node}.verdict.json"),
                "poll_s": 0.3,
                "heartbeat_s": 0.4,
                "flush_s": 0.2,
                "kernel_log": {"source": "file", "path": str(root / "kmsg" / "{node}.log")},
                "gpu": {"backend": "nvml"},
            },
        }
    )


def test_the_stop_line_counts_what_the_spool_did(
    tmp_path: Path, nvml_double: NvmlDouble, caplog: pytest.LogCaptureFixture
) -> None:
    ctl = FakeController()
    a = Agent(_config(tmp_path), NODE, ctl)
    a.start()
    try:
        assert ctl.wait_for(lambda r: True, 3.0), "no first report"
        ctl.up = False
        a.heartbeat()  # spooled, not delivered
    finally:
        with caplog.at_level(logging.INFO, logger="hpresil.agent.service"):
            a.stop()
    totals = a.spool.totals
    waiting = len(a.spool)
    assert totals.delivered >= 1 and waiting >= 1
    stopped = [r.getMessage() for r in caplog.records if "stopped;" in r.getMessage()]
    assert stopped == [
        f"agent for {NODE} stopped; {waiting} reports wait in the spool (since start: "
        f"{totals.delivered} delivered, 0 rejected, 0 deferred, 0 dropped, 0 held)"
    ]
