"""GET routes: node health, incident filters, MTTF over the API, the OpenAPI document."""

from __future__ import annotations

from fastapi.testclient import TestClient

from hpresil import __version__
from hpresil.controller.node_list import natural_key
from hpresil.vocab import Action, Category, CheckResult, Status
from tests.unit.controller.fakes import FakeBackend, FakeClock, report, result, xid79


def post(client: TestClient, node: str, *results: CheckResult) -> None:
    answer = client.post("/v1/reports", json=report(node, *results).model_dump(mode="json"))
    assert answer.status_code == 200


def health(client: TestClient) -> dict[str, str]:
    return {n["name"]: n["health"] for n in client.get("/v1/nodes").json()}


def test_health_of_each_node(client: TestClient, clock: FakeClock, backend: FakeBackend) -> None:
    backend.set_node("node4", "IDLE")
    backend.set_node("node5", "IDLE")
    post(client, "node1")
    clock.advance(50)
    post(client, "node2", xid79())
    post(client, "node3", result(Status.FAIL, Action.WATCH, Category.PERF_DEGRADED))
    post(client, "node4", result(Status.WARN, Action.WATCH))
    post(client, "node5", result(Status.FAIL, Action.DRAIN_NOW, Category.APP))
    clock.advance(20)
    assert health(client) == {
        "node1": "stale",  # last report 70 s ago > stale_after_s
        "node2": "fail",  # open hardware incident
        "node3": "fail",  # a FAIL result that does not drain
        "node4": "warn",
        "node5": "fail",  # an application fault: no hardware incident, but a FAIL result
    }
    row = next(n for n in client.get("/v1/nodes").json() if n["name"] == "node1")
    assert row["last_report_age_s"] == 70.0 and row["gpus"] == 8


def test_nodes_come_in_natural_order() -> None:
    names = ["node10", "node2", "gpu-a1", "node1"]
    assert sorted(names, key=natural_key) == ["gpu-a1", "node1", "node2", "node10"]


def test_incidents_filter_by_status_and_node(client: TestClient) -> None:
    post(client, "node1", xid79())
    post(client, "node2", xid79())
    client.post("/v1/nodes/node1/resume")
    every = client.get("/v1/incidents").json()
    assert [i["id"] for i in every] == [1, 2]
    opened = client.get("/v1/incidents", params={"status": "open"}).json()
    assert [i["node"] for i in opened] == ["node2"]
    on_node1 = client.get("/v1/incidents", params={"status": "resolved", "node": "node1"}).json()
    assert [i["id"] for i in on_node1] == [1]
    bad = client.get("/v1/incidents", params={"status": "maybe"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("query.status:")
    assert client.get("/v1/incidents/99").status_code == 404


def test_mttf_over_the_api(client: TestClient, clock: FakeClock) -> None:
    for node in ("node1", "node2"):
        post(client, node)
    clock.advance(3600 * 10)
    post(client, "node2", xid79())
    view = client.get("/v1/stats/mttf", params={"by": "node"}).json()
    assert view["by"] == "node" and view["since"] is None
    rows = {r["key"]: r for r in view["rows"]}
    assert rows["node1"]["failures"] == 0 and rows["node1"]["mttf_h"] is None
    assert rows["node2"]["failures"] == 1 and rows["node2"]["mttf_h"] == 10.0
    assert view["total"]["nodes"] == 2 and view["total"]["exposure_h"] == 20.0
    since = client.get("/v1/stats/mttf", params={"since": "2026-11-22T13:00:00Z"}).json()
    assert since["total"]["failures"] == 1 and since["total"]["exposure_h"] == 10.0
    assert client.get("/v1/stats/mttf", params={"by": "rack"}).status_code == 422


def test_openapi_and_healthz_need_no_token(client: TestClient) -> None:
    bare = {"Authorization": ""}
    assert client.get("/healthz", headers=bare).json() == {"ok": True}
    doc = client.get("/openapi.json", headers=bare).json()
    assert doc["info"] == {**doc["info"], "title": "hpresil", "version": __version__}
    assert set(doc["paths"]) == {
        "/healthz",
        "/v1/reports",
        "/v1/nodes",
        "/v1/nodes/{node}/drain",
        "/v1/nodes/{node}/resume",
        "/v1/nodes/{node}/hold",
        "/v1/nodes/{node}/release",
        "/v1/incidents",
        "/v1/incidents/{incident_id}",
        "/v1/shared-faults",
        "/v1/shared-faults/{fault_id}",
        "/v1/stats/mttf",
        "/v1/stats/mttr",
        "/v1/burnin/median",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/breakers",
        "/v1/breakers/{category}/reset",
    }
    assert client.get("/v1/nodes", headers=bare).status_code == 401
