"""The reconcile pass: Slurm state, admin resumes, restarted jobs, retention."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from hpresil.controller.reconcile import Periodic, Reconciler, pause
from hpresil.controller.remediation import Executor
from hpresil.store import Store
from hpresil.store.models import NodeRow, ReportRow
from hpresil.vocab import Status
from tests.unit.controller.fakes import FakeBackend, FakeClock, report, result, xid79


def fault(client: TestClient, executor: Executor, node: str) -> None:
    client.post("/v1/reports", json=report(node, xid79()).model_dump(mode="json"))
    executor.run_due()


def nodes(client: TestClient) -> dict[str, dict[str, object]]:
    return {n["name"]: n for n in client.get("/v1/nodes").json()}


def test_nodes_seen_only_in_slurm_are_listed_with_unknown_health(
    client: TestClient, reconciler: Reconciler, backend: FakeBackend
) -> None:
    backend.set_node("node3", "DOWN", reason="Not responding")
    reconciler.run_once()
    seen = nodes(client)
    assert list(seen) == ["node1", "node2", "node3"]
    assert seen["node1"]["health"] == "unknown" and seen["node1"]["slurm_state"] == "IDLE"
    assert (
        seen["node3"]["slurm_state"] == "DOWN" and seen["node3"]["slurm_reason"] == "Not responding"
    )
    assert seen["node3"]["drained_by_hpresil"] is False


def test_drained_by_hpresil_follows_slurm(
    client: TestClient, executor: Executor, reconciler: Reconciler, clock: FakeClock
) -> None:
    fault(client, executor, "node2")
    clock.advance(1)
    reconciler.run_once()
    node2 = nodes(client)["node2"]
    assert node2["drained_by_hpresil"] is True and node2["slurm_state"] == "IDLE+DRAIN"
    assert node2["health"] == "fail" and node2["open_incident"] == 1


def test_an_admin_resume_resolves_the_incident(
    client: TestClient,
    executor: Executor,
    reconciler: Reconciler,
    backend: FakeBackend,
    clock: FakeClock,
) -> None:
    fault(client, executor, "node2")
    clock.advance(1)
    reconciler.run_once()
    assert client.get("/v1/incidents/1").json()["status"] == "open"
    backend.set_node("node2", "IDLE")  # scontrol update state=resume, by hand
    clock.advance(1)
    reconciler.run_once()
    found = client.get("/v1/incidents/1").json()
    assert found["status"] == "resolved" and found["resolved_at"] is not None


def test_an_incident_whose_drain_has_not_run_is_not_resolved(
    client: TestClient, reconciler: Reconciler, clock: FakeClock
) -> None:
    client.post("/v1/reports", json=report("node2", xid79()).model_dump(mode="json"))
    clock.advance(1)
    reconciler.run_once()  # node2 still IDLE in Slurm: the drain is only queued
    assert client.get("/v1/incidents/1").json()["status"] == "open"


def test_a_foreign_drained_incident_is_resolved_when_the_admin_resumes(
    client: TestClient,
    executor: Executor,
    reconciler: Reconciler,
    backend: FakeBackend,
    clock: FakeClock,
) -> None:
    backend.set_node("node3", "IDLE", "DRAIN", reason="admin: PSU swap")
    fault(client, executor, "node3")
    clock.advance(1)
    reconciler.run_once()
    assert client.get("/v1/incidents/1").json()["status"] == "open"
    backend.set_node("node3", "IDLE")
    reconciler.run_once()
    assert client.get("/v1/incidents/1").json()["status"] == "resolved"


def test_a_requeued_job_running_again_is_recorded(
    client: TestClient,
    executor: Executor,
    reconciler: Reconciler,
    backend: FakeBackend,
    clock: FakeClock,
) -> None:
    backend.add_job(61, "node2")
    fault(client, executor, "node2")
    reconciler.run_once()
    assert client.get("/v1/incidents/1").json()["jobs"][0]["restarted_at"] is None
    restart = clock.advance(13)
    backend.start_job(61, "node4", at=restart.replace(microsecond=0))
    reconciler.run_once()
    (job,) = client.get("/v1/incidents/1").json()["jobs"]
    assert job["restarted_node"] == "node4"
    assert job["restarted_at"] == restart.isoformat().replace("+00:00", "Z")


def test_a_new_job_reusing_the_id_after_a_state_wipe_is_not_a_restart(
    client: TestClient,
    executor: Executor,
    reconciler: Reconciler,
    backend: FakeBackend,
    clock: FakeClock,
) -> None:
    backend.add_job(7, "node2")
    fault(client, executor, "node2")
    later = clock.advance(3600)
    backend.add_job(7, "node1", submit=later)  # slurmctld state wiped: ids start over
    reconciler.run_once()
    assert client.get("/v1/incidents/1").json()["jobs"][0]["restarted_at"] is None


def test_old_reports_are_pruned(
    client: TestClient, reconciler: Reconciler, store: Store, clock: FakeClock
) -> None:
    old, new = report("node1", result(Status.OK)), report("node1", result(Status.WARN))
    client.post("/v1/reports", json=old.model_dump(mode="json"))
    clock.advance(timedelta(days=29).total_seconds())
    client.post("/v1/reports", json=new.model_dump(mode="json"))  # a change: stored
    clock.advance(timedelta(days=2).total_seconds())
    reconciler.run_once()
    with store.read() as s:
        assert len(s.scalars(select(ReportRow)).all()) == 1


def test_slurm_down_is_one_log_line_and_the_next_pass_works(
    client: TestClient,
    reconciler: Reconciler,
    backend: FakeBackend,
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend.fail_next = 1
    with caplog.at_level(logging.WARNING):
        reconciler.run_once()
    (line,) = [r for r in caplog.records if r.name == "hpresil.controller.reconcile"]
    assert "slurm did not answer" in line.getMessage() and line.exc_info is None
    reconciler.run_once()
    assert len(nodes(client)) == 3


def test_periodic_survives_exceptions() -> None:
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    loop = Periodic(0.01, flaky, "test-loop")
    loop.start()
    deadline = time.monotonic() + 5
    try:
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        loop.stop()
    assert len(calls) >= 3 and not loop.alive


def test_a_pass_writes_only_what_changed(
    store: Store, reconciler: Reconciler, backend: FakeBackend, clock: FakeClock
) -> None:
    """At 20,000 nodes a pass that rewrote every row each interval would be the
    controller's biggest write: an unchanged node is not written, a changed one is,
    and "Slurm listed it" is refreshed hourly."""
    reconciler.sync()
    updates: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE NODES"):
            updates.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        clock.advance(60)
        reconciler.sync()
        assert updates == []
        backend.set_node("node2", "DOWN", reason="Not responding")
        reconciler.sync()
        assert len(updates) == 1
        updates.clear()
        clock.advance(3600)
        reconciler.sync()
        assert len(updates) == 1  # one statement, every node's slurm_seen_at (executemany)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    with store.read() as s:
        seen = {r.name: r.slurm_seen_at for r in s.scalars(select(NodeRow))}
    assert set(seen.values()) == {clock.now}


def test_a_pass_loads_only_the_rows_it_writes(
    store: Store, reconciler: Reconciler, backend: FakeBackend, clock: FakeClock
) -> None:
    """Slurm's word is compared with the rows' columns; only the nodes it differs for
    are loaded as rows (loading all 20,000 each pass was most of the pass's CPU)."""
    reconciler.sync()
    loaded: list[object] = []

    def rows_read(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        if "FROM nodes" in statement and "nodes.first_seen_at" in statement:
            loaded.append(params)

    event.listen(store.engine, "before_cursor_execute", rows_read)
    try:
        clock.advance(60)
        backend.set_node("node2", "DOWN", reason="Not responding")
        reconciler.sync()
    finally:
        event.remove(store.engine, "before_cursor_execute", rows_read)
    assert len(loaded) == 1 and "node2" in str(loaded[0]) and "node1" not in str(loaded[0])


def test_a_row_changed_behind_the_pass_is_put_right_though_slurm_said_nothing_new(
    store: Store, reconciler: Reconciler, clock: FakeClock
) -> None:
    reconciler.sync()
    with store.write() as s:
        row = s.get(NodeRow, "node1")
        assert row is not None
        held = (row.slurm_state, row.slurm_reason)
        row.slurm_state, row.slurm_reason = "IDLE+DRAIN", "set elsewhere"
    clock.advance(60)
    reconciler.sync()
    with store.read() as s:
        row = s.get(NodeRow, "node1")
        assert row is not None and (row.slurm_state, row.slurm_reason) == held


def test_passes_take_at_most_their_share_of_the_time() -> None:
    """A pass of 2 CPU-seconds with a share of 0.1 waits 18 s, not the interval's 5; a
    quick one waits the interval (a slow pass that only waited, for a Slurm that does
    not answer, is a quick one: its thread's CPU time is counted, not the clock's)."""
    now = [0.0]
    took = iter([2.0, 0.01, 2.0])
    waits: list[float] = []

    def run() -> None:
        now[0] += next(took, 0.0)

    loop = Periodic(5.0, run, "test-share", share=0.1, cpu_time=lambda: now[0])

    class Stop:
        def wait(self, seconds: float) -> bool:
            waits.append(seconds)
            return len(waits) == 3

        def set(self) -> None:
            pass

    loop._stop = Stop()  # type: ignore[assignment]  # record the waits; stop after 3
    loop._loop()
    assert waits == pytest.approx([18.0, 5.0, 18.0])
    assert pause(5.0, 0.4, 1.0) == 5.0 and pause(5.0, 1.0, 0.5) == 5.0


def test_a_pass_that_waits_for_slurm_does_not_put_off_the_next() -> None:
    waits: list[float] = []
    loop = Periodic(0.5, lambda: time.sleep(0.2), "test-waiting", share=0.01)

    class Stop:
        def wait(self, seconds: float) -> bool:
            waits.append(seconds)
            return True

        def set(self) -> None:
            pass

    loop._stop = Stop()  # type: ignore[assignment]
    loop._loop()
    assert waits == [0.5]  # 0.2 s asleep is no CPU: the interval, not 0.2 x 99
