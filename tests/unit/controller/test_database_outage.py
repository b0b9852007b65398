"""PostgreSQL unreachable, then back (issue 12's fault list): the API answers 503, the
agents keep their reports spooled, and once the server returns every report is stored
exactly once and a fault's incident and drain exist once.

The controller is wired as ``hpresil controller`` wires it (the API, the leader lock,
the remediation executor and the reconcile loop; Slurm is the fake backend) and served
by uvicorn over real HTTP; the agent's side is a real :class:`Spool` delivering through
the real :class:`ControllerClient`. The server is this test's own PostgreSQL (the
session's shared one is never stopped), stopped with ``pg_ctl stop -m fast``, which ends
every session, and started again. The outage lasts a few seconds here, not a minute:
nothing in the controller measures an outage's length (a request gives up on the server
within ``PG_CONNECT_TIMEOUT_S``, 3 s, under the agent's 5 s; the leader tries for its
lock every ``leader_check_s``; the spool pauses on a 503 without counting attempts), so
a minute is the same, longer. A server that does not answer at all (its host gone) is
the second test: 503 before the agent gives up."""

from __future__ import annotations

import glob
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from hpresil.adapters.slurm import Slurm
from hpresil.agent.spool import Spool
from hpresil.auth import BearerToken
from hpresil.client import ControllerClient
from hpresil.clock import utcnow
from hpresil.config import Config, ControllerConfig, PolicyConfig
from hpresil.config.limits import LimitsConfig
from hpresil.controller.app import create_app
from hpresil.controller.leader import Leader
from hpresil.controller.service import Duties
from hpresil.controller.topology import Fabric
from hpresil.store import Store
from hpresil.store.db import PG_CONNECT_TIMEOUT_S
from hpresil.store.leader_lock import leader_lock
from hpresil.store.models import ActionRow, IncidentRow, ReportRow
from hpresil.vocab import CheckResult, Report, Status
from tests.serve import served
from tests.unit.controller.conftest import NODES
from tests.unit.controller.contender import CHECK_S, Recorded, until
from tests.unit.controller.fakes import TOKEN, FakeBackend, report, result, xid79

AUTH = {"Authorization": f"Bearer {TOKEN}"}
UNAVAILABLE = {"detail": "database unavailable; try again"}
AGENT_TIMEOUT_S = 5.0  # controller.request_timeout_s's default
OUTAGE_S = 3.0


class PgServer:
    """A PostgreSQL server of the test's own, on a Unix socket in its own folder."""

    def __init__(self, bin_dir: Path) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hpresil-pg-outage-"))
        shutil.chown(self.root, "postgres", "postgres")
        self._bin = bin_dir
        self._data = self.root / "data"
        self.url = f"postgresql+psycopg://postgres@/postgres?host={self.root}&port=5440"
        self._pg("initdb", "-D", str(self._data), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        opts = f"-k {self.root} -c listen_addresses='' -p 5440 -c fsync=off"
        log = str(self.root / "server.log")  # not a captured pipe
        self._pg("pg_ctl", "-D", str(self._data), "-l", log, "-o", opts, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self._data), "-m", mode, "-w", "stop")

    def _pg(self, program: str, *argv: str) -> None:
        command = ["runuser", "-u", "postgres", "--", str(self._bin / program), *argv]
        subprocess.run(command, check=True, capture_output=True, timeout=120)


@pytest.fixture(params=["postgresql"])  # named like the db_url tests on PostgreSQL
def own_postgres() -> Iterator[PgServer]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found or os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is required in CI (scripts/setup installs it)")
        pytest.skip("no PostgreSQL server binaries (or not root to run them)")
    server = PgServer(Path(found[-1]).parent)
    server.start()
    try:
        yield server
    finally:
        with suppress(subprocess.CalledProcessError):  # stopped already
            server.stop("immediate")
        shutil.rmtree(server.root, ignore_errors=True)


@dataclass(frozen=True)
class Controller:
    base: str
    leader: Leader
    backend: FakeBackend


def outage_config(url: str) -> Config:
    return Config(
        controller=ControllerConfig(database=url, leader_check_s=0.1, reconcile_interval_s=0.2),
        policy=PolicyConfig(expedite_requeue=False, limits=LimitsConfig(max_out_pct=100)),
    )


@contextmanager
def controller(url: str) -> Iterator[Controller]:
    """What :func:`run_controller` starts, on ``url``, served at the yielded base URL."""
    cfg = outage_config(url)
    store = Store.open(url)
    store.migrate()
    backend = FakeBackend(*NODES)
    slurm = Slurm(backend, prefix=cfg.policy.reason_prefix, retries=0, backoff_s=0)
    fabric = Fabric.fixed([])
    duties = Duties(cfg, store, slurm, fabric, leads=lambda: leader.confirm())
    leader = Leader(leader_lock(store, duties.wake_here), duties, cfg.controller.leader_check_s)
    app = create_app(
        store=store, slurm=slurm, config=cfg, token=TOKEN, wake=duties.wake, fabric=fabric
    )
    app.state.leads = lambda: leader.leading
    leader.start()
    try:
        with served(app) as base:
            yield Controller(base, leader, backend)
    finally:
        leader.stop()
        store.close()


def spooled(spool: Spool, node: str, *results: CheckResult) -> Report:
    """A report as the agent makes and spools it: the spool's next ``seq``, sent now
    (the controller's clock is the real one here)."""
    made = report(node, *results, seq=spool.next_seq()).model_copy(update={"sent_at": utcnow()})
    spool.put(made)
    return made


def drains(ctl: Controller, node: str) -> int:
    return sum(1 for c in ctl.backend.writes("state") if c[1:3] == (node, "drain"))


def post(base: str, one: Report) -> httpx.Response:
    headers = {**AUTH, "Content-Type": "application/json"}
    return httpx.post(f"{base}/v1/reports", content=one.model_dump_json(), headers=headers)


def test_postgresql_away_then_back_agents_keep_their_reports_and_none_is_stored_twice(
    own_postgres: PgServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "spool")
    with controller(own_postgres.url) as ctl:
        client = ControllerClient(ctl.base, BearerToken(TOKEN), timeout=AGENT_TIMEOUT_S)
        sent = [spooled(spool, "node1", result(at=utcnow()))]
        assert spool.flush(client).delivered == 1 and ctl.leader.leading

        own_postgres.stop()  # every session ends: the leader's, with its lock, and the pool's
        sent += [  # each changes its node's state: stored, not only noted
            spooled(spool, "node2", xid79(at=utcnow())),
            spooled(spool, "node1", result(Status.WARN, at=utcnow())),
            spooled(spool, "node3", result(at=utcnow())),
        ]
        deadline = time.monotonic() + OUTAGE_S
        with caplog.at_level(logging.WARNING, logger="hpresil.controller.errors"):
            while time.monotonic() < deadline:  # the agent tries again and again
                kept = spool.flush(client)
                assert (kept.delivered, kept.rejected, kept.remaining) == (0, 0, 3)
                assert kept.error is not None and "answered 503" in kept.error
                time.sleep(0.1)
        told = [r for r in caplog.records if r.name == "hpresil.controller.errors"]
        assert len(told) == 1, "an outage is logged once, not once per request"
        refused = post(ctl.base, sent[1])
        assert (refused.status_code, refused.json()) == (503, UNAVAILABLE)
        nodes = httpx.get(f"{ctl.base}/v1/nodes", headers=AUTH)
        assert (nodes.status_code, nodes.json()) == (503, UNAVAILABLE)
        assert until(lambda: not ctl.leader.leading)  # its session is gone: it leads no more
        health = httpx.get(f"{ctl.base}/healthz")
        unhealthy = {"ok": False, "leader": False, **UNAVAILABLE}
        assert (health.status_code, health.json()) == (503, unhealthy)
        assert ctl.leader.alive and not ctl.leader.leading and drains(ctl, "node2") == 0
        assert len(spool) == 3 and spool.totals.rejected == 0

        own_postgres.start()
        assert until(lambda: spool.flush(client).remaining == 0)
        assert (spool.totals.delivered, spool.totals.rejected) == (4, 0)
        assert until(lambda: ctl.leader.leading)  # the lock taken again, on a new session
        assert until(lambda: drains(ctl, "node2") == 1)  # the fault's drain, done
        health = httpx.get(f"{ctl.base}/healthz")
        assert (health.status_code, health.json()) == (200, {"ok": True, "leader": True})
        for one in sent:  # an agent whose acknowledgement was lost sends it again
            assert client.post_report(one).duplicate
        time.sleep(0.5)  # a few more reconcile and executor passes
        assert drains(ctl, "node2") == 1 and ctl.leader.alive

    engine = create_engine(own_postgres.url)
    with Session(engine) as s:
        stored = s.execute(select(ReportRow.report_id, func.count()).group_by(ReportRow.report_id))
        assert {row[0]: row[1] for row in stored} == {one.report_id: 1 for one in sent}
        assert s.scalars(select(IncidentRow.node)).all() == ["node2"]
        acted = s.execute(select(ActionRow.kind, ActionRow.target)).all()
        drained = [(str(kind), target) for kind, target in acted if kind == "drain"]
        assert drained == [("drain", "node2")]  # once; the recovery ladder's reboot follows
    engine.dispose()


@contextmanager
def silent_server() -> Iterator[int]:
    """A TCP port that takes connections and never answers: a host gone silent."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)  # the kernel completes each handshake; nobody reads or writes
        yield int(sock.getsockname()[1])


def test_a_postgresql_that_does_not_answer_is_a_503_before_the_agent_gives_up() -> None:
    """Each request would wait out the connect timeout; once one has, the others within
    ``RETRY_S`` are answered at once (they would otherwise queue on the API's threads),
    and ``/healthz`` asks every time."""
    connect = PG_CONNECT_TIMEOUT_S - 0.5, AGENT_TIMEOUT_S
    with silent_server() as port:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/hpresil"
        store = Store.open(url)
        slurm = Slurm(FakeBackend(*NODES), prefix="hpresil:", retries=0, backoff_s=0)
        app = create_app(store=store, slurm=slurm, config=outage_config(url), token=TOKEN)
        try:
            with TestClient(app, headers=AUTH) as api:
                for path, (least, most) in (
                    ("/v1/nodes", connect),
                    ("/v1/incidents", (0.0, 0.5)),  # not asked again within RETRY_S
                    ("/healthz", connect),
                ):
                    started = time.monotonic()
                    answer = api.get(path)
                    took = time.monotonic() - started
                    assert answer.status_code == 503, path
                    assert answer.json()["detail"] == UNAVAILABLE["detail"], path
                    assert least < took < most, path
        finally:
            store.close()


class ClosedUnderIt:
    """A lock whose socket another thread closes (the executor's ``confirm()`` finding
    the session gone) just as the leader's thread is about to watch it."""

    def __init__(self) -> None:
        self.taken = 0
        self.lost = False

    def try_acquire(self) -> bool:
        self.taken += 1
        return True

    def holds(self) -> bool:
        self.lost = True
        return False

    def release(self) -> None:
        pass

    def fileno(self) -> int | None:
        if self.lost:
            return None
        with socket.socket() as sock:
            return sock.fileno()  # closed on return

    def describe(self) -> str:
        return "the test's lock"


def test_the_leaders_thread_lives_on_when_its_lock_socket_is_closed_under_it() -> None:
    lock, duties = ClosedUnderIt(), Recorded()
    leader = Leader(lock, duties, check_s=CHECK_S)
    duties.leader = leader
    leader.start()
    try:
        assert until(lambda: lock.lost and lock.taken == 2)  # stepped down, took it again
        assert until(lambda: leader.leading and duties.running)
        assert leader.alive and duties.stopped_while_leading == [False]
    finally:
        leader.stop()
