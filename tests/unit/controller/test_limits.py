"""Bounded power (issue 11): the drain cap, the breaker and shadow mode. A check that
fires everywhere must not drain the cluster; what was held back is in the ledger."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from hpresil.config import Config, ControllerConfig, JobsConfig, PolicyConfig
from hpresil.config.limits import LimitsConfig
from hpresil.controller.reconcile import Reconciler
from hpresil.controller.remediation import Executor
from hpresil.vocab import Action, Category, Status
from tests.unit.controller.fakes import FakeBackend, report, result, xid79


@pytest.fixture
def cfg(db_url: str, request: pytest.FixtureRequest) -> Config:
    """Each test's policy from its ``policy`` mark (the conftest's is wide open)."""
    mark = request.node.get_closest_marker("policy")
    policy = PolicyConfig(expedite_requeue=False, **(mark.kwargs if mark else {}))
    jobs = JobsConfig(webhook_url="http://127.0.0.1:9/hook")  # alerts queued, never sent
    return Config(controller=ControllerConfig(database=db_url), policy=policy, jobs=jobs)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend("node1", "node2", "node3", "node4")


def post(client: TestClient, node: str, *results: Any) -> None:
    answer = client.post("/v1/reports", json=report(node, *results).model_dump(mode="json"))
    assert answer.status_code == 200, answer.text


def actions(client: TestClient, node: str) -> list[tuple[str, str, str | None]]:
    (found,) = client.get(f"/v1/incidents?node={node}").json()
    return [(a["kind"], a["status"], a["outcome"]) for a in found["actions"]]


def drained(backend: FakeBackend) -> list[object]:
    return [c[1] for c in backend.writes("state") if c[2] == "drain"]


ONE_OUT = LimitsConfig(max_out=1, max_out_pct=100)


@pytest.mark.policy(limits=ONE_OUT)
def test_past_the_cap_a_drain_is_held_back_and_recorded(
    client: TestClient, executor: Executor, backend: FakeBackend
) -> None:
    post(client, "node1", xid79())
    post(client, "node2", xid79())
    executor.run_due()
    assert drained(backend) == ["node1"]
    assert actions(client, "node1")[0] == ("drain", "done", "drained")
    assert actions(client, "node2")[0] == ("drain", "skipped", "capped")
    (found,) = client.get("/v1/incidents?node=node2").json()
    why = found["actions"][0]["why"]
    assert "held back: 1 nodes already out because of hpresil, 1 allowed" in why
    assert found["status"] == "open"  # the fault is on record, the node in service


@pytest.mark.policy(limits=ONE_OUT)
def test_past_the_cap_a_gpu_off_the_bus_still_has_its_jobs_requeued(
    client: TestClient, executor: Executor, backend: FakeBackend
) -> None:
    backend.add_job(21, "node2")
    post(client, "node1", xid79())
    post(client, "node2", xid79())
    executor.run_due()
    executor.run_due()
    assert drained(backend) == ["node1"]
    assert backend.writes("requeue") == [("requeue", 21)]
    kinds = actions(client, "node2")
    assert kinds[:2] == [("drain", "skipped", "capped"), ("requeue_node", "done", "1 job(s)")]
    assert ("requeue", "done", "requeued") in kinds


@pytest.mark.policy(limits=ONE_OUT)
def test_past_the_cap_a_fault_that_can_wait_leaves_the_jobs_alone(
    client: TestClient, executor: Executor, backend: FakeBackend
) -> None:
    backend.add_job(22, "node2")
    ecc = result(Status.FAIL, Action.RESET_GPU, Category.HBM_ECC)
    post(client, "node1", xid79())
    post(client, "node2", ecc)
    executor.run_due()
    assert backend.writes("requeue") == []
    assert [k for k, *_ in actions(client, "node2")] == ["drain", "notify"]


@pytest.mark.policy(limits=ONE_OUT)
def test_a_capped_drain_is_done_once_the_cap_has_room(
    client: TestClient, executor: Executor, backend: FakeBackend, reconciler: Reconciler
) -> None:
    post(client, "node1", xid79())
    post(client, "node2", xid79())
    executor.run_due()
    reconciler.sync()  # still no room: nothing queued
    executor.run_due()
    assert drained(backend) == ["node1"]
    assert client.post("/v1/nodes/node1/resume").status_code == 200  # node1 is back
    reconciler.sync()
    executor.run_due()
    assert drained(backend) == ["node1", "node2"]
    last = client.get("/v1/incidents?node=node2").json()[0]["actions"][-1]
    assert (last["kind"], last["status"]) == ("drain", "done")
    assert last["why"].endswith("the cap has room again")


@pytest.mark.policy(limits=ONE_OUT)
def test_the_first_capped_drain_alerts_once(client: TestClient, executor: Executor) -> None:
    post(client, "node1", xid79())
    post(client, "node2", xid79())
    post(client, "node3", xid79())
    alerts = [a for n in ("node2", "node3") for a in actions(client, n) if a[0] == "notify"]
    assert len(alerts) == 1


BREAKER = LimitsConfig(breaker_nodes=2, max_out_pct=100)


@pytest.mark.policy(limits=BREAKER)
def test_one_category_on_too_many_nodes_trips_its_breaker(
    client: TestClient, executor: Executor, backend: FakeBackend
) -> None:
    for node in ("node1", "node2", "node3"):
        post(client, node, xid79())
    executor.run_due()
    assert drained(backend) == ["node1", "node2"]
    assert actions(client, "node3")[0] == ("drain", "skipped", "breaker")
    (breaker,) = client.get("/v1/breakers?tripped=true").json()
    assert breaker["category"] == "gpu_lost_pcie"
    assert breaker["nodes"] == ["node1", "node2", "node3"]
    assert breaker["held_back"] == 1 and breaker["reset_at"] is None
    (found,) = client.get("/v1/incidents?node=node3").json()
    (alert,) = [a for a in found["actions"] if a["kind"] == "notify"]
    assert alert["why"].startswith("breaker_tripped: ")


@pytest.mark.policy(limits=BREAKER)
def test_a_tripped_breaker_holds_its_category_until_an_operator_resets_it(
    client: TestClient, executor: Executor, backend: FakeBackend
) -> None:
    for node in ("node1", "node2", "node3"):
        post(client, node, xid79())
    ecc = result(Status.FAIL, Action.RESET_GPU, Category.HBM_ECC)
    post(client, "node4", ecc)  # another category is not held
    executor.run_due()
    assert "node4" in drained(backend)
    answer = client.post("/v1/breakers/gpu_lost_pcie/reset")
    assert answer.status_code == 200
    assert answer.json()["reset_by"] == "operator (token)"
    assert client.get("/v1/breakers?tripped=true").json() == []
    assert client.get("/v1/breakers").json()[0]["reset_at"] is not None


def test_resetting_a_breaker_that_is_not_tripped_is_404(client: TestClient) -> None:
    answer = client.post("/v1/breakers/gpu_lost_pcie/reset")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "no tripped breaker for gpu_lost_pcie"}
    assert client.post("/v1/breakers/not_a_category/reset").status_code == 422


@pytest.mark.policy(mode="shadow")
def test_shadow_mode_records_every_drain_and_leaves_slurm_alone(
    client: TestClient, executor: Executor, backend: FakeBackend
) -> None:
    backend.add_job(23, "node1")
    post(client, "node1", xid79())
    executor.run_due()
    assert backend.writes("state") == [] and backend.writes("requeue") == []
    (found,) = client.get("/v1/incidents?node=node1").json()
    (drain,) = found["actions"]
    assert (drain["kind"], drain["status"], drain["outcome"]) == ("drain", "skipped", "shadow")
    assert "shadow mode (policy.mode): would drain" in drain["why"]


def test_the_cap_allows_a_share_of_the_fleet_and_at_least_one() -> None:
    limits = LimitsConfig(max_out=50, max_out_pct=10)
    assert [limits.allowed_out(n) for n in (0, 4, 100, 1000, 20000)] == [1, 1, 10, 50, 50]
    assert LimitsConfig(max_out=0).allowed_out(1000) == 0  # 0: never drain


@pytest.mark.policy(mode="shadow")
def test_a_shadow_incident_ends_with_the_next_healthy_report(client: TestClient) -> None:
    post(client, "node1", xid79())
    post(client, "node1", result())  # the node reports healthy: the episode is over
    post(client, "node1", xid79())  # a later fault: an incident of its own
    found = client.get("/v1/incidents?node=node1").json()
    assert sorted(i["status"] for i in found) == ["open", "resolved"]


@pytest.mark.policy(limits=ONE_OUT)
def test_a_capped_incident_stays_open_until_it_is_drained(client: TestClient) -> None:
    post(client, "node1", xid79())
    post(client, "node2", xid79())
    post(client, "node2", result())  # healthy now, but the GPU fell off the bus
    (found,) = client.get("/v1/incidents?node=node2").json()
    assert found["status"] == "open"
