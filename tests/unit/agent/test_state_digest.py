"""The agent and the controller agree on a node's state by its digest (issue 12): a
real agent (GPUs through pynvml into the NVML double) delivering to the controller's
real ingest on SQLite. The state travels when it changes; heartbeats carry its digest;
a controller that lost the state asks for it and gets it, and nothing is lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update

from hpresil.agent.service import Agent
from hpresil.api import ReportAck
from hpresil.clock import utcnow
from hpresil.config import Config, PolicyConfig
from hpresil.controller.ingest import Ingest
from hpresil.store import Store
from hpresil.store.models import NodeResultsRow, NodeRow, ReportRow
from hpresil.vocab import Report
from tests.nvmldouble import NvmlDouble
from tests.unit.agent.test_service import NODE, _config


class ToIngest:
    """The agent's sink: the controller's own ingest, every report and answer kept."""

    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest
        self.seen: list[tuple[Report, ReportAck]] = []
        self.arrived = threading.Condition()

    def post_report(self, report: Report) -> ReportAck:
        ack = self._ingest(report)
        with self.arrived:
            self.seen.append((report, ack))
            self.arrived.notify_all()
        return ack

    def wait_for(self, ok: Callable[[Report, ReportAck], bool], timeout: float = 5.0) -> Report:
        with self.arrived:
            start = len(self.seen)
            found: list[Report] = []

            def ready() -> bool:
                found[:] = [r for r, a in self.seen[start:] if ok(r, a)]
                return bool(found)

            assert self.arrived.wait_for(ready, timeout), "no such report"
            return found[0]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store.open(f"sqlite:///{tmp_path}/hpresil.db")
    st.migrate()
    yield st
    st.close()


@pytest.fixture
def sink(store: Store) -> ToIngest:
    return ToIngest(Ingest(store, PolicyConfig(), utcnow, lambda: None))


@pytest.fixture
def agent(tmp_path: Path, nvml_double: NvmlDouble, sink: ToIngest) -> Iterator[Agent]:
    (tmp_path / "kmsg").mkdir()
    (tmp_path / "kmsg" / f"{NODE}.log").write_text("[    1.000000] Linux version 6.8\n")
    cfg: Config = _config(tmp_path)
    a = Agent(cfg, NODE, sink)
    a.start()
    yield a
    a.stop()


def heartbeat(report: Report, ack: ReportAck) -> bool:
    return report.heartbeat


def stored(store: Store) -> tuple[NodeRow, int]:
    with store.read() as s:
        row = s.get(NodeRow, NODE)
        assert row is not None
        s.expunge(row)
        return row, int(s.scalar(select(func.count()).select_from(ReportRow)) or 0)


def test_the_state_travels_once_then_only_its_digest(agent: Agent, sink: ToIngest) -> None:
    first = sink.wait_for(lambda r, a: not r.heartbeat)
    beats = [sink.wait_for(heartbeat) for _ in range(2)]
    assert len(first.results) > 8 and first.gpus and first.digest
    faults = [(r.check, r.status) for r in first.results if r.is_fault]  # none where healthy
    for beat in beats:
        assert [(r.check, r.status) for r in beat.results] == faults
        assert beat.gpus == () and beat.digest == first.digest
    assert len(faults) < len(first.results) // 4
    asked = [a for r, a in sink.seen if a.send_state]
    assert asked == []  # the controller held the state each digest named


def test_a_controller_that_lost_the_state_gets_it_back(
    agent: Agent, sink: ToIngest, store: Store
) -> None:
    first = sink.wait_for(lambda r, a: not r.heartbeat)
    sink.wait_for(heartbeat)
    held, _ = stored(store)
    with store.write() as s:  # restored from a backup older than the node's state
        s.execute(delete(NodeResultsRow))
        s.execute(update(NodeRow).values(state_digest=None, worst=None))
    sink.wait_for(lambda r, a: a.send_state)
    resent = sink.wait_for(lambda r, a: not r.heartbeat)
    assert resent.digest == first.digest and len(resent.results) == len(first.results)
    sink.wait_for(lambda r, a: r.heartbeat and not a.send_state)
    row, _ = stored(store)
    assert row.state_digest == first.digest and row.worst == held.worst
    assert len(row.last_results or []) == len(held.last_results or [])


def test_an_unchanged_fleet_stores_one_row_per_node(
    agent: Agent, sink: ToIngest, store: Store
) -> None:
    sink.wait_for(lambda r, a: not r.heartbeat)
    for _ in range(3):
        sink.wait_for(heartbeat)
    time.sleep(0.1)
    row, reports = stored(store)
    assert reports == 1 and row.last_seq == max(r.seq for r, _ in sink.seen)
