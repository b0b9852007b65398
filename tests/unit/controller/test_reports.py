"""POST /v1/reports: validation, authentication, idempotence, what gets stored."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hpresil.store import Store
from hpresil.store.models import ActionRow, IncidentRow, NodeRow, ReportRow
from hpresil.vocab import Action, Category, Status
from tests.unit.controller.fakes import T0, FakeClock, report, result, xid79


def body(rep: Any) -> dict[str, Any]:
    return rep.model_dump(mode="json")  # type: ignore[no-any-return]


def count(store: Store, model: type[Any]) -> int:
    with store.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_a_report_is_stored_and_updates_its_node(client: TestClient, store: Store) -> None:
    ack = client.post("/v1/reports", json=body(report("node1", result(), seq=7)))
    assert ack.status_code == 200
    assert ack.json() == {
        "accepted": True,
        "duplicate": False,
        "incidents": [],
        "send_state": False,
    }
    with store.read() as s:
        node = s.get(NodeRow, "node1")
        assert node is not None
        assert node.first_seen_at == T0 and node.last_report_at == T0
        assert node.last_seq == 7 and node.gpus == 8
        assert node.last_results and node.last_results[0]["check"] == "ecc"
    assert count(store, ReportRow) == 1


def test_a_duplicate_report_is_acknowledged_and_ignored(client: TestClient, store: Store) -> None:
    rep = report("node2", xid79(), report_id="agent-node2-00000042")
    first = client.post("/v1/reports", json=body(rep)).json()
    again = client.post("/v1/reports", json=body(rep)).json()
    assert first == {
        "accepted": True,
        "duplicate": False,
        "incidents": [1],
        "send_state": False,
    }
    assert again == {
        "accepted": True,
        "duplicate": True,
        "incidents": [],
        "send_state": False,
    }
    assert count(store, ReportRow) == 1 and count(store, ActionRow) == 1
    with store.read() as s:
        incident = s.get(IncidentRow, 1)
        assert incident is not None and incident.findings == 1


def test_malformed_reports_get_a_one_line_422_and_nothing_is_stored(
    client: TestClient, store: Store
) -> None:
    good = body(report("node1", xid79()))
    bad_status = json.loads(json.dumps(good))
    bad_status["results"][0]["status"] = "exploded"
    extra_key = {**good, "colour": "red"}
    cases = {
        "results.0.status: Input should be 'ok'": bad_status,
        "colour: Extra inputs are not permitted": extra_key,
        "report_id: Field required": {"node": "node1"},
    }
    for start, payload in cases.items():
        answer = client.post("/v1/reports", json=payload)
        assert answer.status_code == 422
        detail = answer.json()["detail"]
        assert isinstance(detail, str) and "\n" not in detail
        assert detail.startswith(start), detail
    garbage = client.post(
        "/v1/reports", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert garbage.status_code == 422
    assert garbage.json()["detail"].startswith("body is not valid JSON")
    assert count(store, ReportRow) == 0 and count(store, NodeRow) == 0
    assert client.get("/healthz").json() == {"ok": True}


def test_missing_or_wrong_token_is_401(client: TestClient, store: Store) -> None:
    payload = body(report("node1", xid79()))
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer " + "x" * 32}):
        answer = client.post("/v1/reports", json=payload, headers=headers)
        assert answer.status_code == 401
        assert answer.json() == {"detail": "missing or wrong bearer token"}
    assert client.get("/v1/nodes", headers={"Authorization": "Basic abc"}).status_code == 401
    assert count(store, ReportRow) == 0


def test_a_body_over_one_mib_is_413(client: TestClient, store: Store) -> None:
    payload = body(report("node1", result()))
    payload["results"][0]["evidence"] = {"blob": "x" * (1 << 20)}
    answer = client.post("/v1/reports", json=payload)
    assert answer.status_code == 413
    assert "over 1048576 bytes" in answer.json()["detail"]

    def chunks() -> Any:  # no Content-Length: counted while read
        yield json.dumps(payload).encode()

    streamed = client.post(
        "/v1/reports", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert count(store, ReportRow) == 0


def test_warnings_are_stored_only(client: TestClient, store: Store) -> None:
    warn = result(Status.WARN, Action.WATCH, Category.THERMAL_POWER, check="thermal")
    ack = client.post("/v1/reports", json=body(report("node1", warn))).json()
    assert ack["incidents"] == []
    assert count(store, IncidentRow) == 0 and count(store, ActionRow) == 0
    (node,) = client.get("/v1/nodes").json()
    assert node["health"] == "warn"


def test_latest_result_per_check_and_gpu_is_kept(
    client: TestClient, store: Store, clock: FakeClock
) -> None:
    warn = result(Status.WARN, Action.WATCH, check="thermal", index=1)
    client.post("/v1/reports", json=body(report("node1", warn, result(check="ecc"))))
    later = clock.advance(10)
    client.post(
        "/v1/reports", json=body(report("node1", result(check="thermal", index=1, at=later)))
    )
    client.post("/v1/reports", json=body(report("node1")))  # a heartbeat changes no result
    with store.read() as s:
        node = s.get(NodeRow, "node1")
        assert node is not None and node.last_results is not None
        assert {(r["check"], r["status"]) for r in node.last_results} == {
            ("ecc", "ok"),
            ("thermal", "ok"),
        }
    assert client.get("/v1/nodes").json()[0]["health"] == "ok"


def test_an_answer_without_commands_leaves_the_field_out_for_older_agents(
    client: TestClient,
) -> None:
    """An agent older than ``ReportAck.commands`` (its models forbid fields they do not
    know) still reads the answer of a controller that has it; and a report that names
    no command says nothing of it, for a controller older than ``Report.command``."""
    ack = client.post("/v1/reports", json=body(report("node1", result(), seq=3))).json()
    assert "commands" not in ack
    assert "command" not in body(report("node1", result(), seq=4))
