"""POST /v1/nodes/{node}/drain and /resume: hpresil resumes only what it drained."""

from __future__ import annotations

from fastapi.testclient import TestClient

from hpresil.controller.remediation import Executor
from tests.unit.controller.fakes import FakeBackend, report, xid79


def fault(client: TestClient, executor: Executor, node: str) -> None:
    client.post("/v1/reports", json=report(node, xid79()).model_dump(mode="json"))
    executor.run_due()


def test_operator_drain_opens_an_operator_incident(
    client: TestClient, backend: FakeBackend
) -> None:
    answer = client.post("/v1/nodes/node1/drain", json={"reason": "swap the PSU"})
    assert answer.status_code == 200
    assert answer.json() == {"outcome": "drained", "incident": 1}
    assert backend.nodes_by_name["node1"].reason == "hpresil: operator: swap the PSU"
    found = client.get("/v1/incidents/1").json()
    assert (found["category"], found["action"], found["hardware"]) == ("operator", "drain", False)
    assert found["drained_at"] is not None and found["summary"] == "swap the PSU"
    assert [(a["kind"], a["status"]) for a in found["actions"]] == [("drain", "done")]
    (node,) = [n for n in client.get("/v1/nodes").json() if n["name"] == "node1"]
    assert node["drained_by_hpresil"] is True and node["slurm_state"] == "IDLE+DRAIN"


def test_operator_drain_reuses_the_open_incident(client: TestClient, executor: Executor) -> None:
    fault(client, executor, "node2")
    answer = client.post("/v1/nodes/node2/drain", json={"reason": "double sure"}).json()
    assert answer == {"outcome": "already_ours", "incident": 1}
    assert len(client.get("/v1/incidents").json()) == 1


def test_operator_drain_of_a_foreign_drained_node_opens_nothing(
    client: TestClient, backend: FakeBackend
) -> None:
    backend.set_node("node3", "IDLE", "DRAIN", reason="admin: rack work")
    answer = client.post("/v1/nodes/node3/drain", json={"reason": "mine"}).json()
    assert answer == {"outcome": "foreign", "incident": None}
    assert backend.nodes_by_name["node3"].reason == "admin: rack work"
    assert client.get("/v1/incidents").json() == []


def test_resume_returns_our_node_and_resolves_its_incident(
    client: TestClient, executor: Executor, backend: FakeBackend
) -> None:
    fault(client, executor, "node2")
    answer = client.post("/v1/nodes/node2/resume")
    assert answer.json() == {"outcome": "resumed", "resolved_incidents": [1]}
    assert "DRAIN" not in backend.nodes_by_name["node2"].states
    found = client.get("/v1/incidents/1").json()
    assert found["status"] == "resolved" and found["resolved_at"] is not None
    assert found["actions"][-1]["kind"] == "resume"
    assert client.get("/v1/incidents", params={"status": "open"}).json() == []


def test_resume_refuses_a_node_someone_else_drained(
    client: TestClient, executor: Executor, backend: FakeBackend
) -> None:
    backend.set_node("node3", "IDLE", "DRAIN", reason="admin: PSU swap")
    fault(client, executor, "node3")
    answer = client.post("/v1/nodes/node3/resume")
    assert answer.status_code == 409
    detail = answer.json()["detail"]
    assert "someone else" in detail and "admin: PSU swap" in detail and "\n" not in detail
    assert backend.nodes_by_name["node3"].reason == "admin: PSU swap"
    assert client.get("/v1/incidents/1").json()["status"] == "open"


def test_resume_of_a_node_in_service_closes_its_open_incidents(
    client: TestClient, backend: FakeBackend
) -> None:
    client.post("/v1/reports", json=report("node1", xid79()).model_dump(mode="json"))
    answer = client.post("/v1/nodes/node1/resume").json()  # the drain never ran
    assert answer == {"outcome": "not_drained", "resolved_incidents": [1]}
    assert backend.writes("state") == []


def test_unknown_node_is_404_and_slurm_failure_is_502(
    client: TestClient, backend: FakeBackend
) -> None:
    for path in ("/v1/nodes/nodeX/resume", "/v1/nodes/nodeX/drain"):
        answer = client.post(path, json={"reason": "x"})
        assert answer.status_code == 404 and "nodeX" in answer.json()["detail"]
    backend.fail_next = 1
    answer = client.post("/v1/nodes/node1/drain", json={"reason": "x"})
    assert answer.status_code == 502
    assert answer.json()["detail"].startswith("slurm failed: `sinfo` exited 1")
    assert client.get("/v1/incidents").json() == []
