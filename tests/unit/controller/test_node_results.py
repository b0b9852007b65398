"""What a node keeps of its reports' results (issue 9, defects 4 and 5): the latest
report's view of each check, in arrival order, bounded per node."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from hpresil.config import Config
from hpresil.controller.ingest import MAX_RESULTS_PER_NODE, Ingest
from hpresil.store import Store, repo
from hpresil.store.models import NodeRow
from hpresil.vocab import Action, Category, Status
from tests.unit.controller.fakes import T0, FakeClock, report, result


def post(client: TestClient, rep: Any) -> None:
    answer = client.post("/v1/reports", json=rep.model_dump(mode="json"))
    assert answer.status_code == 200, answer.text


def stored(store: Store, node: str) -> list[dict[str, Any]]:
    with store.read() as s:
        row = s.get(NodeRow, node)
        assert row is not None
        return list(row.last_results or [])


def health(client: TestClient, node: str) -> str:
    views = client.get("/v1/nodes").json()
    found: str = next(v["health"] for v in views if v["name"] == node)
    return found


def presence_fail(index: int, at: datetime = T0) -> Any:
    return result(
        Status.FAIL,
        Action.DRAIN,
        Category.GPU_LOST_PCIE,
        check="gpu_presence",
        index=index,
        at=at,
    )


def test_a_per_gpu_fail_no_longer_reported_by_its_check_is_dropped(
    client: TestClient, store: Store, clock: FakeClock
) -> None:
    post(client, report("node1", presence_fail(3), result(check="ecc", index=0)))
    clock.advance(10)
    back = result(check="gpu_presence", index=None, at=clock())  # the GPU is back
    post(client, report("node1", back, result(check="ecc", index=0, at=clock())))
    kept = {(r["check"], (r.get("gpu") or {}).get("index")) for r in stored(store, "node1")}
    assert kept == {("gpu_presence", None), ("ecc", 0)}
    with store.write() as s:  # the node was drained, the GPU came back, it was resumed
        incident = repo.open_incident(s, "node1")
        assert incident is not None
        repo.resolve(s, incident, clock())
    assert health(client, "node1") == "ok"


def test_a_result_stamped_in_the_far_future_does_not_outlive_newer_reports(
    store: Store, cfg: Config, clock: FakeClock
) -> None:
    """The API refuses such times; ingest must not trust agent clocks either."""
    ingest = Ingest(store, cfg.policy, clock, lambda: None)
    far = datetime(9999, 1, 1, tzinfo=T0.tzinfo)
    ingest(report("node1", result(Status.WARN, check="power", index=0, at=far)))
    clock.advance(10)
    ingest(report("node1", result(Status.OK, check="power", index=0, at=clock())))
    assert [r["status"] for r in stored(store, "node1")] == ["ok"]


def test_checks_absent_from_a_report_keep_their_latest_results(
    client: TestClient, store: Store
) -> None:
    post(client, report("node1", result(check="burnin_matmul", index=0)))
    post(client, report("node1", result(check="ecc", index=0)))
    assert sorted(r["check"] for r in stored(store, "node1")) == ["burnin_matmul", "ecc"]


def test_results_kept_per_node_are_bounded_and_faults_are_kept_first(
    client: TestClient, store: Store, clock: FakeClock
) -> None:
    many = MAX_RESULTS_PER_NODE + 50
    for round_ in range(3):
        clock.advance(1)
        junk = [result(check=f"c{round_}-{i}", index=None, at=clock()) for i in range(many)]
        fault = result(Status.WARN, check=f"z-warn-{round_}", index=None, at=clock())
        post(client, report("node1", *junk, fault))
    kept = stored(store, "node1")
    assert len(kept) == MAX_RESULTS_PER_NODE
    assert {r["check"] for r in kept if r["status"] == "warn"} == {
        "z-warn-0",
        "z-warn-1",
        "z-warn-2",
    }
    assert any(r["check"].startswith("c2-") for r in kept)  # the newest report comes first


def test_a_stored_result_that_no_longer_validates_does_not_block_reports(
    client: TestClient, store: Store
) -> None:
    post(client, report("node1", result(check="ecc", index=0)))
    with store.write() as s:  # written by an older version, say
        row = s.get(NodeRow, "node1")
        assert row is not None
        row.last_results = [{"check": "legacy", "status": "exploded", "observed_at": "x"}]
    post(client, report("node1", result(check="ecc", index=0, at=T0 + timedelta(seconds=1))))
    assert sorted(r["check"] for r in stored(store, "node1")) == ["ecc", "legacy"]


def test_a_late_report_is_judged_but_does_not_replace_newer_results(
    store: Store, cfg: Config, clock: FakeClock
) -> None:
    """The agent's spool puts off a report the controller failed on and delivers the
    ones behind it: the older one arrives last. Its fault is still acted on; its
    results do not replace the newer report's, nor does it lower the node's seq."""
    ingest = Ingest(store, cfg.policy, clock, lambda: None)
    ingest(report("node1", result(Status.OK, check="ecc", index=2), seq=6))
    clock.advance(5)
    old_fault = result(Status.FAIL, Action.RESET_GPU, Category.HBM_ECC, check="ecc", index=2)
    ack = ingest(report("node1", old_fault, seq=5))
    assert ack.incidents  # the fault it carries opened an incident
    assert [r["status"] for r in stored(store, "node1")] == ["ok"]
    with store.read() as s:
        row = s.get(NodeRow, "node1")
        assert row is not None and row.last_seq == 6


def test_burnin_reports_without_a_spool_seq_are_never_late(
    store: Store, cfg: Config, clock: FakeClock
) -> None:
    ingest = Ingest(store, cfg.policy, clock, lambda: None)
    ingest(report("node1", result(check="ecc", index=0), seq=9))
    ingest(report("node1", result(check="burnin_matmul", index=0), seq=0))
    assert {r["check"] for r in stored(store, "node1")} == {"ecc", "burnin_matmul"}
