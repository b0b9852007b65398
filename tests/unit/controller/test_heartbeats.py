"""Agents send what changed (issue 12): a heartbeat carries the state's digest and its
faults, the controller keeps the current state per node and a history of changes, and
asks for the state when the digest is not the one it holds."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, update

from hpresil.store import Store, repo
from hpresil.store.models import ActionRow, IncidentRow, JobRow, NodeResultsRow, NodeRow, ReportRow
from hpresil.vocab import (
    Action,
    Category,
    CheckResult,
    JobObservation,
    Report,
    Status,
    state_digest,
)
from tests.unit.controller.fakes import FakeClock, report, result, xid79

ECC_FAIL = result(Status.FAIL, check="ecc", index=3)


def state(node: str, *results: CheckResult, seq: int) -> Report:
    """A state report as the agent sends it: every result, and the state's digest."""
    rep = report(node, *results, seq=seq)
    return rep.model_copy(update={"digest": state_digest(results, rep.gpus)})


def beat(of: Report, seq: int, *faults: CheckResult, **more: Any) -> Report:
    """A heartbeat standing for the state report ``of``."""
    rep = report(of.node, *faults, seq=seq)
    return rep.model_copy(update={"digest": of.digest, "heartbeat": True, "gpus": (), **more})


def post(client: TestClient, rep: Report) -> dict[str, Any]:
    answer = client.post("/v1/reports", json=rep.model_dump(mode="json"))
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def rows(store: Store, model: type[Any]) -> int:
    with store.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def node(store: Store, name: str) -> NodeRow:
    with store.read() as s:
        row = s.get(NodeRow, name)
        assert row is not None
        s.expunge(row)
        return row


def test_heartbeats_leave_no_rows_and_keep_the_node_seen(
    client: TestClient, store: Store, clock: FakeClock
) -> None:
    first = state("node1", result(check="ecc", index=0), result(check="pcie", index=0), seq=1)
    assert post(client, first)["send_state"] is False
    for seq in range(2, 12):
        clock.advance(10)
        ack = post(client, beat(first, seq))
        assert ack == {"accepted": True, "duplicate": False, "incidents": [], "send_state": False}
    row = node(store, "node1")
    assert (row.last_seq, row.last_report_at, row.state_digest) == (11, clock(), first.digest)
    assert row.worst == "ok" and len(row.last_results or []) == 2  # the state, not emptied
    assert rows(store, ReportRow) == 1  # the state report; no heartbeat


def test_a_heartbeat_sent_again_or_late_changes_nothing(
    client: TestClient, store: Store, clock: FakeClock
) -> None:
    first = state("node1", result(), seq=1)
    post(client, first)
    again = beat(first, 5)
    assert post(client, again)["duplicate"] is False
    clock.advance(10)
    assert post(client, again)["duplicate"] is True  # its answer was lost: sent again
    assert post(client, beat(first, 3))["duplicate"] is False  # from the spool, behind
    row = node(store, "node1")
    assert row.last_seq == 5 and row.last_report_at == clock()  # seen, not rolled back


def test_a_digest_the_controller_does_not_hold_asks_for_the_state(
    client: TestClient, store: Store
) -> None:
    first = state("node1", result(check="ecc", index=0), seq=1)
    post(client, first)
    with store.write() as s:  # restored from a backup taken before the node's state
        s.execute(delete(NodeResultsRow))
        s.execute(update(NodeRow).values(state_digest=None, worst=None))
    assert post(client, beat(first, 2))["send_state"] is True
    resent = state("node1", result(check="ecc", index=0), seq=3)
    assert post(client, resent)["send_state"] is False
    assert post(client, beat(resent, 4))["send_state"] is False
    row = node(store, "node1")
    assert row.state_digest == first.digest == resent.digest
    assert [r["check"] for r in row.last_results or []] == ["ecc"]


def test_a_new_node_asks_once(client: TestClient) -> None:
    """An agent's first heartbeat to a controller that never had its state."""
    digest = state_digest((), ())
    hb = report("node2", seq=1).model_copy(update={"digest": digest, "heartbeat": True})
    assert post(client, hb)["send_state"] is True


def test_only_the_results_that_changed_are_stored(
    client: TestClient, store: Store, clock: FakeClock
) -> None:
    ok = [result(check="ecc", index=i) for i in range(8)]
    post(client, state("node1", *ok, seq=1))
    clock.advance(10)
    later = [result(check="ecc", index=i, at=clock()) for i in range(8)]  # same, later
    post(client, state("node1", *later, seq=2))
    worse = [*later[:3], ECC_FAIL, *later[4:]]
    post(client, state("node1", *worse, seq=3))
    with store.read() as s:
        bodies = [r.body for r in s.scalars(select(ReportRow).order_by(ReportRow.id))]
    assert [len(b["results"]) for b in bodies] == [8, 1]  # all new; then GPU 3's FAIL
    assert bodies[1]["results"][0]["status"] == "fail" and bodies[1]["seq"] == 3
    assert node(store, "node1").worst == "fail"


def test_an_xid_seen_again_is_stored_again(client: TestClient, store: Store) -> None:
    post(client, report("node1", xid79()))
    post(client, report("node1", xid79()))
    assert rows(store, ReportRow) == 2


def test_a_persistent_fault_in_heartbeats_is_judged_as_before(
    client: TestClient, store: Store, clock: FakeClock
) -> None:
    """The state's faults travel with each heartbeat: once the incident is resolved (the
    node resumed with the fault still there) the next heartbeat opens a new one, as a
    heartbeat carrying the whole state did."""
    fault = result(Status.FAIL, Action.DRAIN, Category.HBM_ECC, check="ecc", index=3)
    first = state("node1", fault, seq=1)
    assert post(client, first)["incidents"] == [1]
    assert post(client, beat(first, 2, fault))["incidents"] == [1]  # the same incident
    with store.write() as s:
        incident = repo.open_incident(s, "node1")
        assert incident is not None
        repo.resolve(s, incident, clock())
    assert post(client, beat(first, 3, fault))["incidents"] == [2]
    assert rows(store, IncidentRow) == 2 and rows(store, ActionRow) == 2
    assert rows(store, ReportRow) == 1  # the heartbeats changed nothing stored


def test_a_quiet_heartbeat_observes_the_jobs(client: TestClient, store: Store) -> None:
    first = state("node1", result(), seq=1)
    post(client, first)
    job = JobObservation(job_id=42, processes=3, gpus=(0, 1), step=7)
    post(client, beat(first, 2, jobs=(job,)))
    with store.read() as s:
        row = s.scalars(select(JobRow).where(JobRow.job_id == 42)).one()
        assert row.step == 7 and row.gpus == 2


def test_a_heartbeat_without_a_digest_is_refused(client: TestClient, store: Store) -> None:
    payload = report("node1", seq=1).model_dump(mode="json") | {"heartbeat": True}
    answer = client.post("/v1/reports", json=payload)
    assert answer.status_code == 422
    assert "digest" in answer.json()["detail"] and "\n" not in answer.json()["detail"]
    assert rows(store, NodeRow) == 0
