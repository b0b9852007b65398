"""An agent restart loses no XID and judges none twice: an XID written to the kernel
log while the agent is down is reported by the next agent started with the same
configuration, and an XID reported before the restart is not reported again (file
kernel log, GPUs through the NVML double, a fake controller)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hpresil.agent.inject import inject_xid
from hpresil.agent.service import Agent
from hpresil.config import Config, parse
from hpresil.vocab import Report, Status
from tests.nvmldouble import NvmlDouble
from tests.unit.agent.fakes import FakeController

NODE = "node4"


@pytest.fixture
def cfg(tmp_path: Path, nvml_double: NvmlDouble) -> Config:
    (tmp_path / "kmsg").mkdir()
    (tmp_path / "kmsg" / f"{NODE}.log").write_text("[    1.000000] Linux version 6.8\n")
    return parse(
        {
            "controller": {"url": "http://127.0.0.1:9", "token_file": str(tmp_path / "token")},
            "agent": {
                "spool_dir": str(tmp_path / "spool" / "{node}"),
                "cache_file": str(tmp_path / "run" / "{node}.verdict.json"),
                "poll_s": 0.5,
                "heartbeat_s": 0.7,
                "flush_s": 0.2,
                "kernel_log": {
                    "source": "file",
                    "path": str(tmp_path / "kmsg" / "{node}.log"),
                    "poll_s": 0.05,
                },
                "gpu": {"backend": "nvml"},
            },
        }
    )


def _xids(reports: list[Report]) -> list[int]:
    return [
        x.xid
        for r in reports
        for x in r.results
        if x.check == "xid" and x.xid is not None and x.status is Status.FAIL
    ]


def _started(cfg: Config, ctl: FakeController) -> Agent:
    agent = Agent(cfg, NODE, ctl)
    agent.start()
    assert ctl.wait_for(lambda r: True, 3.0), "no first report"
    time.sleep(0.2)  # the watcher has opened the kernel log by now
    return agent


def _has_xid(number: int) -> object:
    return lambda r: number in _xids([r])


def test_an_xid_written_while_the_agent_is_down_is_reported_after_restart(
    cfg: Config,
) -> None:
    before = FakeController()
    agent = _started(cfg, before)
    inject_xid(cfg, NODE, 48, 1)
    assert before.wait_for(_has_xid(48), 3.0)  # type: ignore[arg-type]
    agent.stop()

    inject_xid(cfg, NODE, 79, 3)  # nobody reads the kernel log now

    after = FakeController()
    agent = _started(cfg, after)
    try:
        assert after.wait_for(_has_xid(79), 3.0), "the XID logged while down was lost"  # type: ignore[arg-type]
        time.sleep(1.0)  # ticks and heartbeats later
    finally:
        agent.stop()
    assert _xids(after.received) == [79]  # once, and 48 (reported before) not again


def test_the_first_start_ever_does_not_judge_old_lines(cfg: Config, tmp_path: Path) -> None:
    inject_xid(cfg, NODE, 79, 3)  # before any agent ran here: of unknown age
    ctl = FakeController()
    agent = _started(cfg, ctl)
    try:
        time.sleep(0.8)
    finally:
        agent.stop()
    assert _xids(ctl.received) == []
    saved = json.loads((tmp_path / "spool" / NODE / "kernlog.cursor").read_text())
    log_size = (tmp_path / "kmsg" / f"{NODE}.log").stat().st_size
    assert saved["cursor"]["offset"] == log_size  # the end, so the next start misses nothing


def test_a_restart_with_nothing_new_reports_no_xid(cfg: Config) -> None:
    first = FakeController()
    agent = _started(cfg, first)
    inject_xid(cfg, NODE, 79, 3)
    assert first.wait_for(_has_xid(79), 3.0)  # type: ignore[arg-type]
    agent.stop()

    again = FakeController()
    agent = _started(cfg, again)
    try:
        time.sleep(0.8)
    finally:
        agent.stop()
    assert _xids(again.received) == []
