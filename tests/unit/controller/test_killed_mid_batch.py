"""The controller killed mid-batch (issue 12's fault list): every acknowledged report
is in the database, and no unacknowledged one is half-applied.

A real ``hpresil controller`` process (Slurm unreachable: an empty ``slurm.bin_dir``)
takes reports from twenty agents at once, each a thread with a real :class:`Spool`
delivering through the real :class:`ControllerClient`: state changes, the same state
again, heartbeats, and on four nodes an XID 79. Once enough are acknowledged it is
killed with SIGKILL while the other requests are under way (on PostgreSQL the test
holds the ingest's lock on the fleet's decisions, so that the XID reports are killed
inside their transactions, their report rows written), and started again on the same
database. What it finds there must be, node by node, exactly what the node's reports
up to some ``seq`` make: every acknowledged one, and the one cut off either wholly or
not at all (its report row, its node's ``seq`` and state, its incident and drain).
The spools then deliver what they kept, the report cut off first: answered as a
duplicate exactly when it had been taken in. Acknowledged reports sent again (a lost
answer) are duplicates, and at the end each report row is there once, each node at
its last ``seq``, each XID's node with one open incident and one drain.

Twice: the agents sending with the cluster token (every report the whole way, a
transaction each), and as agents do, each signing with its node's key over the
connection it keeps, for nodes Slurm has listed, so that their heartbeats take the
heartbeats' lane and are committed together (the controller's log shows those
transactions): a kill cuts such a transaction off with every heartbeat in it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from hpresil.agent.spool import Spool
from hpresil.api import ReportAck
from hpresil.auth import BearerToken, NodeKey, node_key, write_token
from hpresil.client import ControllerClient
from hpresil.clock import utcnow
from hpresil.store import Store, serial
from hpresil.store.models import ActionRow, IncidentRow, NodeRow, ReportRow
from hpresil.vocab import Report, Status
from tests.unit.controller.contender import until
from tests.unit.controller.fakes import result, xid79
from tests.unit.controller.test_heartbeats import beat, state
from tests.unit.controller.test_leader_processes import _health, controller_config

NODES = [f"gpu{i:02d}" for i in range(1, 21)]
FAULT_AT = {"gpu03": 5, "gpu08": 7, "gpu13": 9, "gpu18": 11}  # the seq of each XID 79
REPORTS = 16  # per node
KILL_AFTER = 120  # acknowledgements, of the 320


class ControllerProcess:
    """``hpresil controller`` in a process of its own, on one port and one database."""

    def __init__(self, tmp_path: Path, db_url: str) -> None:
        self.db_url = db_url
        more = "[policy]\nexpedite_requeue = false\n[policy.limits]\nmax_out_pct = 100\n"
        self.config, port = controller_config(tmp_path, "hpresil", db_url, more)
        self.url = f"http://127.0.0.1:{port}"
        self.token = write_token(tmp_path / "token")
        self.log = tmp_path / "controller.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        hpresil = Path(sys.executable).with_name("hpresil")
        with self.log.open("ab") as log:
            argv = [str(hpresil), "-vv", "--config", str(self.config), "controller"]
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log)
        assert until(self._serving, limit_s=20.0), self.log.read_text()[-3000:]

    def _serving(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
        return (_health(f"{self.url}/healthz") or {}).get("ok") is True

    def kill(self) -> None:
        """SIGKILL: no clean stop; the kernel closes its sockets and its database files."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(10)


@pytest.fixture
def controller(tmp_path: Path, db_url: str) -> Iterator[ControllerProcess]:
    found = ControllerProcess(tmp_path, db_url)
    try:
        yield found
    finally:
        found.kill()


@dataclass(frozen=True)
class Made:
    report: Report
    stores: bool  # changes its node's stored results: leaves a report row
    fault: bool


@dataclass(frozen=True)
class NodeView:
    """What the database holds of one node."""

    last_seq: int = 0
    digest: str | None = None  # the state the controller holds
    reports: frozenset[str] = frozenset()  # stored report ids
    incidents: tuple[str, ...] = ()  # their statuses
    actions: tuple[str, ...] = ()  # their kinds


@dataclass
class Agent:
    """One node's agent, as far as its reports go: it makes the next one, spools it
    and flushes the spool, noting each answer, until one cannot be delivered."""

    node: str
    spool: Spool
    client: ControllerClient
    made: list[Made] = field(default_factory=list)
    answers: dict[str, ReportAck] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # noted, for the test's thread to assert on
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _run(self) -> None:
        while not self.errors:
            flushed = self.spool.flush(self)
            if flushed.error is not None:
                self.errors.append(flushed.error)
            elif len(self.made) == REPORTS:
                return
            else:
                self.spool.put(self._next())

    def post_report(self, report: Report) -> ReportAck:
        """The spool's way to the controller: the real client; the answer noted."""
        ack = self.client.post_report(report)
        self.answers[report.report_id] = ack
        return ack

    def _next(self) -> Report:
        seq, now = self.spool.next_seq(), utcnow()
        states = [m.report for m in self.made if not m.report.heartbeat]
        fault_at = FAULT_AT.get(self.node, REPORTS + 1)
        ecc = result(Status.WARN if (seq // 4) % 2 else Status.OK, at=now)
        if seq == fault_at:  # the XID joins the state
            made = Made(state(self.node, ecc, xid79(at=now), seq=seq), True, True)
        elif seq > fault_at:  # nothing changes any more: heartbeats with the fault
            last = states[-1]
            made = Made(beat(last, seq, *(r for r in last.results if r.is_fault)), False, False)
        elif seq % 4 == 1:  # ECC flips between OK and WARN (not a fault)
            made = Made(state(self.node, ecc, seq=seq), True, False)
        elif seq % 4 == 3:  # the same state again: nothing changed
            made = Made(state(self.node, ecc, seq=seq), False, False)
        else:
            made = Made(beat(states[-1], seq), False, False)
        self.made.append(made)
        return made.report

    def acknowledged(self) -> int:
        """The highest ``seq`` answered (answers come in ``seq`` order)."""
        return len(self.answers)

    def expected(self, upto: int) -> NodeView:
        """What the database holds of this node once its reports up to ``upto`` are in."""
        made = self.made[:upto]
        if not made:
            return NodeView()
        faulted = any(m.fault for m in made)
        return NodeView(
            last_seq=upto,
            digest=[m.report for m in made if not m.report.heartbeat][-1].digest,
            reports=frozenset(m.report.report_id for m in made if m.stores),
            incidents=("open",) if faulted else (),
            actions=("drain",) if faulted else (),
        )


def stored(db_url: str) -> dict[str, NodeView]:
    """Each node's view in the database; asserts that no report is stored twice."""
    engine = create_engine(db_url)
    try:
        with Session(engine) as s:
            reports = s.execute(select(ReportRow.node, ReportRow.report_id)).all()
            nodes = s.execute(select(NodeRow.name, NodeRow.last_seq, NodeRow.state_digest))
            incidents = s.execute(select(IncidentRow.node, IncidentRow.status)).all()
            actions = s.execute(select(ActionRow.target, ActionRow.kind)).all()
            views = {n: NodeView(seq or 0, digest) for n, seq, digest in nodes}
    finally:
        engine.dispose()
    twice = [rid for rid, n in Counter(rid for _, rid in reports).items() if n > 1]
    assert not twice, f"stored twice: {twice}"
    found: dict[str, NodeView] = {}
    for name, view in views.items():
        found[name] = NodeView(
            view.last_seq,
            view.digest,
            frozenset(rid for node, rid in reports if node == name),
            tuple(sorted(str(status) for node, status in incidents if node == name)),
            tuple(sorted(str(kind) for target, kind in actions if target == name)),
        )
    return found


@contextmanager
def decisions_held(db_url: str) -> Iterator[Callable[[], int]]:
    """On PostgreSQL, the ingest's lock on the fleet's decisions held by the test: a
    report that opens an incident waits for it inside its transaction, its node's row
    and its report row written. Yields how many wait (SQLite has no such lock: 0)."""
    if not db_url.startswith("postgresql"):
        yield lambda: 0
        return
    key = {"a": serial.SPACE, "b": serial.DECISIONS}
    waiting = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND classid = :a AND objid = :b AND objsubid = 2"
    )
    engine = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:a, :b)"), key)
        try:
            yield lambda: int(conn.execute(waiting, key).scalar() or 0)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), key)
    engine.dispose()


def acked(agents: list[Agent]) -> int:
    return sum(a.acknowledged() for a in agents)


def run_all(agents: list[Agent]) -> list[threading.Thread]:
    threads = [threading.Thread(target=a.run, name=a.node) for a in agents]
    for thread in threads:
        thread.start()
    return threads


def join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), f"{thread.name} still sends"


def listed_by_slurm(db_url: str, nodes: list[str]) -> None:
    """The nodes in a new ledger as the reconcile pass leaves those Slurm lists."""
    store = Store.open(db_url)
    try:
        store.migrate()
        with store.write() as s:
            now = utcnow()
            s.add_all(NodeRow(name=node, first_seen_at=now, slurm_seen_at=now) for node in nodes)
    finally:
        store.close()


def clients(controller: ControllerProcess, signed_by: str) -> Callable[[str], ControllerClient]:
    """Each node's client: one sending the cluster token, or each node's own."""
    if signed_by == "token":
        shared = ControllerClient(controller.url, BearerToken(controller.token))
        return lambda node: shared
    return lambda node: ControllerClient(
        controller.url, NodeKey(node, node_key(controller.token, node))
    )


@pytest.mark.parametrize("signed_by", ["token", "node key"])
def test_killed_mid_batch_keeps_every_acknowledged_report_and_half_applies_none(
    controller: ControllerProcess, db_url: str, tmp_path: Path, signed_by: str
) -> None:
    if signed_by == "node key":
        listed_by_slurm(db_url, NODES)
    controller.start()
    client_of = clients(controller, signed_by)
    agents = [Agent(node, Spool(tmp_path / "spool" / node), client_of(node)) for node in NODES]
    # 1. twenty agents at once; the controller killed while they send (on PostgreSQL
    # with XID reports inside their transactions, waiting for the test's lock)
    with decisions_held(db_url) as waiting:
        threads = run_all(agents)
        pg = db_url.startswith("postgresql")
        assert until(lambda: acked(agents) >= KILL_AFTER and (waiting() > 0 or not pg))
        inside = waiting()
        controller.kill()
        join_all(threads)
    errors = [e for a in agents for e in a.errors]
    batched = re.findall(r"group commit: (\d+) in one transaction", controller.log.read_text())
    if signed_by == "node key":  # the heartbeats took the lane, several to a commit
        assert batched and max(map(int, batched)) > 1, batched
    else:
        assert not batched
    assert all(f"controller {controller.url} unreachable" in e for e in errors), errors
    cut = [e for e in errors if "Connection refused" not in e or "kept connection" in e]
    assert cut, f"no request was under way when the controller was killed: {errors}"
    assert acked(agents) < len(NODES) * REPORTS
    assert all(len(a.spool) == len(a.made) - a.acknowledged() <= 1 for a in agents)

    # 2. started again: each node is exactly as its reports up to some seq make it,
    # every acknowledged one among them, the one cut off wholly or not at all
    controller.start()
    found = stored(db_url)
    taken: dict[str, int] = {}
    for agent in agents:
        seq = found.get(agent.node, NodeView()).last_seq
        assert seq in {agent.acknowledged(), len(agent.made)}, agent.node
        taken[agent.node] = seq
    assert found == {a.node: a.expected(taken[a.node]) for a in agents if taken[a.node]}
    cut_faults = [a.node for a in agents if a.made[-1].fault and a.acknowledged() < len(a.made)]
    if pg:  # the XID reports were cut inside their transactions: nothing of them is left
        assert len(cut_faults) >= inside > 0
        assert all(taken[node] == FAULT_AT[node] - 1 for node in cut_faults)

    # 3. the spools deliver what they kept (the report cut off first), then go on
    cut_off = {a.node: a.made[-1].report for a in agents if a.acknowledged() < len(a.made)}
    for agent in agents:
        agent.errors.clear()
    join_all(run_all(agents))
    assert all(not a.errors and len(a.made) == REPORTS and not len(a.spool) for a in agents)
    for agent in agents:
        report = cut_off.get(agent.node)
        if report is not None:  # a duplicate exactly when it had been taken in
            assert agent.answers[report.report_id].duplicate == (taken[agent.node] == report.seq)
        fresh = [m.report for m in agent.made if m.report.seq > taken[agent.node]]
        assert not any(agent.answers[r.report_id].duplicate for r in fresh if r is not report)

    # 4. acknowledged reports sent again (their answer lost): duplicates, nothing stored
    for agent in agents:
        again = [m.report for m in agent.made if m.stores] + [agent.made[-1].report]
        assert all(agent.client.post_report(r).duplicate for r in again), agent.node

    assert stored(db_url) == {a.node: a.expected(REPORTS) for a in agents}
