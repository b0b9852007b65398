"""The agent end to end on one machine: file kernel log, GPUs through pynvml into the
NVML double (tests/nvmldouble.py), a fake controller. The detection target: an injected
XID 79 reaches the controller as a FAIL report well within 1 s."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hpresil.agent.inject import inject_xid
from hpresil.agent.service import Agent, run_agent
from hpresil.auth import node_key, write_secret
from hpresil.checks.base import Registry
from hpresil.checks.ecc import EccCheck
from hpresil.checks.gpu_presence import GpuPresenceCheck
from hpresil.checks.xid import XidCheck
from hpresil.config import Config, parse
from hpresil.vocab import Action, Category, CheckResult, Report, Status
from hpresil.vocab.snapshot import Snapshot
from tests.nvmldouble import NvmlDouble
from tests.unit.agent.fakes import FakeController

NODE = "node1"


def _config(root: Path, **agent: object) -> Config:
    return parse(
        {
            "controller": {"url": "http://127.0.0.1:9", "token_file": str(root / "token")},
            "agent": {
                "spool_dir": str(root / "spool" / "{node}"),
                "cache_file": str(root / "run" / "{node}.verdict.json"),
                "poll_s": 0.5,
                "heartbeat_s": 0.7,
                "flush_s": 0.2,
                "kernel_log": {
                    "source": "file",
                    "path": str(root / "kmsg" / "{node}.log"),
                    "poll_s": 0.05,
                },
                "gpu": {"backend": "nvml"},
                **agent,
            },
        }
    )


@pytest.fixture
def cfg(tmp_path: Path, nvml_double: NvmlDouble) -> Config:
    (tmp_path / "kmsg").mkdir()
    (tmp_path / "kmsg" / f"{NODE}.log").write_text("[    1.000000] Linux version 6.8\n")
    return _config(tmp_path)


@pytest.fixture
def ctl() -> FakeController:
    return FakeController()


@pytest.fixture
def agent(cfg: Config, ctl: FakeController) -> Iterator[Agent]:
    a = Agent(cfg, NODE, ctl)
    a.start()
    assert ctl.wait_for(lambda r: True, 3.0), "no first report"
    time.sleep(0.2)  # the watcher has opened the kernel log by now
    yield a
    a.stop()


def _results(report: Report, check: str) -> list[CheckResult]:
    return [r for r in report.results if r.check == check]


def _xid_events(report: Report) -> list[CheckResult]:
    return [r for r in report.results if r.check == "xid" and r.xid is not None]


def _has_xid(number: int) -> object:
    return lambda r: any(x.xid == number and x.status is Status.FAIL for x in r.results)


def test_injected_xid_79_arrives_as_a_fail_report_within_one_second(
    agent: Agent, cfg: Config, ctl: FakeController
) -> None:
    t0 = time.monotonic()
    line = inject_xid(cfg, NODE, 79, 3)
    report = ctl.wait_for(_has_xid(79), 1.0)  # type: ignore[arg-type]
    elapsed = time.monotonic() - t0
    assert report is not None, "no FAIL report within 1 s of the injection"
    assert elapsed < 1.0
    (result,) = _xid_events(report)
    assert (result.status, result.action, result.category) == (
        Status.FAIL,
        Action.REBOOT,
        Category.GPU_LOST_PCIE,
    )
    assert result.gpu is not None and (result.gpu.index, result.gpu.pci_bus_id) == (3, "0000:5d:00")
    assert line in result.evidence["raw"]
    assert _results(report, "gpu_presence") and len(_results(report, "ecc")) == 8  # all current
    assert len(report.gpus) == 8


def test_an_xid_event_is_reported_once(agent: Agent, cfg: Config, ctl: FakeController) -> None:
    inject_xid(cfg, NODE, 48, 1)
    assert ctl.wait_for(_has_xid(48), 1.0)  # type: ignore[arg-type]
    time.sleep(1.6)  # several ticks and heartbeats later
    with_48 = [r for r in ctl.received if any(x.xid == 48 for x in r.results)]
    assert len(with_48) == 1
    later = [r for r in ctl.received if r.seq > with_48[0].seq]
    # the next report is the whole state once more; heartbeats carry only its digest
    assert later and _results(later[0], "gpu_presence") and not later[0].heartbeat
    # ...and later reports say GPU 1 is quiet again, superseding the event's FAIL.
    quiet = [x for x in _results(later[0], "xid") if x.gpu and x.gpu.index == 1]
    assert [(x.status, x.xid) for x in quiet] == [(Status.OK, None)]


def test_reports_have_unique_ids_and_increasing_seq(agent: Agent, ctl: FakeController) -> None:
    time.sleep(1.6)
    seqs = [r.seq for r in ctl.received]
    assert len(seqs) >= 3 and seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert len({r.report_id for r in ctl.received}) == len(ctl.received)


def test_a_lost_gpu_is_reported_at_the_next_tick(
    agent: Agent, nvml_double: NvmlDouble, ctl: FakeController
) -> None:
    nvml_double.set_gpu(6, lost=True)

    def lost(r: Report) -> bool:
        return any(
            x.status is Status.FAIL and x.gpu and x.gpu.index == 6
            for x in _results(r, "gpu_presence")
        )

    report = ctl.wait_for(lost, 2.0)
    assert report is not None


def test_the_verdict_cache_holds_the_latest_state(
    agent: Agent, cfg: Config, nvml_double: NvmlDouble, tmp_path: Path
) -> None:
    nvml_double.set_gpu(2, ecc_volatile_uncorrected_dram=4, ecc_aggregate_uncorrected_dram=4)
    inject_xid(cfg, NODE, 79, 0)
    cache = tmp_path / "run" / f"{NODE}.verdict.json"
    deadline = time.monotonic() + 3
    data: dict[str, object] = {}
    while time.monotonic() < deadline:
        data = json.loads(cache.read_text())
        if data["status"] == "fail" and data["recent_events"]:
            break
        time.sleep(0.1)
    assert data["node"] == NODE and data["status"] == "fail" and data["action"] == "reset_gpu"
    results = data["results"]
    assert isinstance(results, list) and any(
        r["check"] == "ecc" and r["status"] == "fail" for r in results
    )
    events = data["recent_events"]
    assert isinstance(events, list) and events[0]["xid"] == 79


def test_the_controller_down_spools_then_delivers(
    cfg: Config, ctl: FakeController, tmp_path: Path
) -> None:
    ctl.up = False
    with Agent(cfg, NODE, ctl) as agent:
        time.sleep(0.3)
        inject_xid(cfg, NODE, 79, 5)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not agent.spool.pending():
            time.sleep(0.05)
        time.sleep(0.3)
        spooled = [Report.model_validate_json(p.read_text()) for p in agent.spool.pending()]
        assert any(_has_xid(79)(r) for r in spooled)  # type: ignore[operator]
        assert ctl.received == []
        ctl.up = True
        assert ctl.wait_for(_has_xid(79), 2.0)  # type: ignore[arg-type]
    assert [r.seq for r in ctl.received] == sorted(r.seq for r in ctl.received)


class _Broken:
    name = "broken"
    tags = frozenset({"quick"})
    interval_s = 0.0
    timeout_s = 1.0

    def supported(self, snapshot: Snapshot) -> bool:
        return True

    def evaluate(self, snapshot: Snapshot) -> list[CheckResult]:
        raise RuntimeError("this check is broken")


def test_a_broken_check_yields_unknown_and_the_agent_keeps_going(
    cfg: Config, ctl: FakeController
) -> None:
    registry = Registry([XidCheck(), GpuPresenceCheck(), EccCheck(), _Broken()])
    with Agent(cfg, NODE, ctl, registry=registry):
        time.sleep(0.3)
        inject_xid(cfg, NODE, 79, 1)
        report = ctl.wait_for(_has_xid(79), 1.0)  # type: ignore[arg-type]
    assert report is not None
    (broken,) = _results(report, "broken")
    assert broken.status is Status.UNKNOWN and "this check is broken" in broken.summary


def test_run_agent_talks_to_systemd_and_stops_on_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(tmp_path, key_file=str(tmp_path / "{node}.key"))
    write_secret(tmp_path / f"{NODE}.key", node_key("t" * 32, NODE))  # the agent's credential
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    got: list[str] = []

    def systemd() -> None:
        while "STOPPING=1" not in got:
            try:
                got.append(sock.recv(256).decode())
            except OSError:
                return
            if got[-1] == "WATCHDOG=1" and got.count("WATCHDOG=1") == 1:
                os.kill(os.getpid(), signal.SIGTERM)

    t = threading.Thread(target=systemd, daemon=True)
    t.start()
    start = time.monotonic()
    run_agent(cfg, NODE)  # returns after SIGTERM
    t.join(timeout=5)
    sock.close()
    assert time.monotonic() - start < 10
    assert "READY=1" in got and "WATCHDOG=1" in got and got[-1] == "STOPPING=1"
    assert list((tmp_path / "spool" / NODE).glob("*.json")), "reports kept for a later delivery"


def test_an_agent_started_before_the_driver_loads_checks_gpus_once_it_does(
    cfg: Config, nvml_double: NvmlDouble, ctl: FakeController
) -> None:
    """nvmlInit answers DRIVER_NOT_LOADED (the agent started first at boot): GPUs are
    UNKNOWN, never a failure, and NVML is opened again at a later tick."""
    nvml_double.set_node(init_error=9)
    a = Agent(cfg, NODE, ctl)
    a.start()
    try:

        def presence(status: Status) -> Callable[[Report], bool]:
            return lambda r: any(x.status is status for x in _results(r, "gpu_presence"))

        early = ctl.wait_for(presence(Status.UNKNOWN), 3.0)
        assert (
            early is not None and "Driver Not Loaded" in _results(early, "gpu_presence")[0].summary
        )
        gpus = [x for x in early.results if x.gpu is not None or x.check == "gpu_presence"]
        assert not [x.summary for x in gpus if x.status is Status.FAIL]
        nvml_double.set_node(init_error=0)
        later = ctl.wait_for(presence(Status.OK), 3.0)
        assert later is not None and len(later.gpus) == 8
    finally:
        a.stop()
