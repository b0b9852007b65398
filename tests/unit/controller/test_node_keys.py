"""Each node speaks only for itself: requests signed with a node's key.

A node's key may read, send its own reports and drain itself; a forged, tampered,
replayed or stale request, a report for another node, and every other write are
refused, and nothing of them is stored."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message

from hpresil.auth import NodeKey, NodeSignature, node_key
from hpresil.controller.callers import NODE_WRITES, NonceWindow
from hpresil.store import Store
from hpresil.store.models import ActionRow, IncidentRow, NodeRow, ReportRow
from tests.unit.controller.fakes import TOKEN, FakeBackend, FakeClock, report, result, xid79
from tests.unit.controller.test_reports import count

SKEW_S = 300.0  # ControllerConfig.max_clock_skew_s, the default the fixtures use


def signed(
    clock: FakeClock,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    node: str = "node1",
    token: str = TOKEN,
    at: float | None = None,
) -> dict[str, str]:
    """Headers of a request ``node`` signs with the key derived from ``token``."""
    when = clock().timestamp() if at is None else at
    key = NodeKey(node, node_key(token, node), clock=lambda: when)
    headers = {"Authorization": key.authorization(method, target, body)}
    return headers | ({"Content-Type": "application/json"} if body else {})


def report_body(node: str, *results: Any) -> bytes:
    return json.dumps(report(node, *results).model_dump(mode="json")).encode()


def nothing_stored(store: Store) -> bool:
    rows = (ReportRow, NodeRow, IncidentRow, ActionRow)
    return all(count(store, row) == 0 for row in rows)


# --- what a node's key may do ---
def test_a_node_sends_its_own_report(client: TestClient, clock: FakeClock, store: Store) -> None:
    payload = report_body("node1", xid79())
    answer = client.post(
        "/v1/reports", content=payload, headers=signed(clock, "POST", "/v1/reports", payload)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] is True and answer.json()["incidents"] == [1]
    assert count(store, ReportRow) == 1


def test_a_node_reads_as_anyone_with_a_credential_does(
    client: TestClient, clock: FakeClock
) -> None:
    for target in ("/v1/nodes", "/v1/incidents?status=open&node=node2", "/v1/stats/mttf"):
        answer = client.get(target, headers=signed(clock, "GET", target))
        assert answer.status_code == 200, (target, answer.text)


def test_a_node_drains_itself_and_the_ledger_names_it(
    client: TestClient, clock: FakeClock, backend: FakeBackend
) -> None:
    payload = b'{"reason": "healthcheck: GPU 2: 3 uncorrected ECC errors"}'
    target = "/v1/nodes/node1/drain"
    answer = client.post(target, content=payload, headers=signed(clock, "POST", target, payload))
    assert answer.json() == {"outcome": "drained", "incident": 1}
    assert "DRAIN" in backend.nodes_by_name["node1"].states
    (action,) = client.get("/v1/incidents/1").json()["actions"]
    assert action["why"] == "node1 (node key): healthcheck: GPU 2: 3 uncorrected ECC errors"


def test_operator_actions_name_the_token(client: TestClient) -> None:
    client.post("/v1/nodes/node2/drain", json={"reason": "swap the PSU"})
    client.post("/v1/nodes/node2/resume")
    whys = [a["why"] for a in client.get("/v1/incidents/1").json()["actions"]]
    assert whys == ["operator (token): swap the PSU", "operator (token): return to service"]


# --- refused, with nothing stored ---
def test_a_forged_signature_is_401(client: TestClient, clock: FakeClock, store: Store) -> None:
    payload = report_body("node2", xid79())
    forged = signed(clock, "POST", "/v1/reports", payload, node="node2", token="f" * 32)
    answer = client.post("/v1/reports", content=payload, headers=forged)
    assert (answer.status_code, answer.json()) == (
        401,
        {"detail": "node key of node2: bad signature"},
    )
    assert answer.headers["WWW-Authenticate"] == "HPRESIL-NODE"
    assert nothing_stored(store)


def test_a_body_changed_after_signing_is_401(
    client: TestClient, clock: FakeClock, store: Store
) -> None:
    headers = signed(clock, "POST", "/v1/reports", report_body("node1", result()))
    answer = client.post("/v1/reports", content=report_body("node1", xid79()), headers=headers)
    assert answer.status_code == 401 and "bad signature" in answer.json()["detail"]
    assert nothing_stored(store)


def test_a_signature_for_another_path_or_query_is_401(client: TestClient, clock: FakeClock) -> None:
    headers = signed(clock, "GET", "/v1/incidents?node=node1")
    assert client.get("/v1/incidents?node=node2", headers=headers).status_code == 401
    assert client.get("/v1/nodes", headers=signed(clock, "GET", "/v1/incidents")).status_code == 401


def test_a_replayed_request_is_401(client: TestClient, clock: FakeClock, store: Store) -> None:
    payload = report_body("node1", xid79())
    headers = signed(clock, "POST", "/v1/reports", payload)
    assert client.post("/v1/reports", content=payload, headers=headers).status_code == 200
    clock.advance(5)
    again = client.post("/v1/reports", content=payload, headers=headers)
    assert (again.status_code, again.json()) == (
        401,
        {"detail": "node key of node1: replayed request"},
    )
    assert count(store, ReportRow) == 1


@pytest.mark.parametrize("off_s", [-SKEW_S - 1, SKEW_S + 1])
def test_a_stale_or_early_request_is_401_naming_the_setting(
    client: TestClient, clock: FakeClock, store: Store, off_s: float
) -> None:
    payload = report_body("node1", xid79())
    at = clock().timestamp() + off_s
    answer = client.post(
        "/v1/reports", content=payload, headers=signed(clock, "POST", "/v1/reports", payload, at=at)
    )
    assert answer.status_code == 401
    assert "controller.max_clock_skew_s (300 s)" in answer.json()["detail"]
    assert nothing_stored(store)


def test_a_report_for_another_node_is_403_naming_node(
    client: TestClient, clock: FakeClock, store: Store
) -> None:
    payload = report_body("node2", xid79())  # node1's key, node2's fault
    answer = client.post(
        "/v1/reports", content=payload, headers=signed(clock, "POST", "/v1/reports", payload)
    )
    assert answer.status_code == 403
    assert answer.json()["detail"] == "node: 'node2' is not 'node1', whose key signed it"
    assert nothing_stored(store)


@pytest.mark.parametrize(
    ("target", "payload"),
    [
        ("/v1/nodes/node2/drain", b'{"reason": "healthcheck: forged"}'),
        ("/v1/nodes/node2/resume", b""),
        ("/v1/nodes/node1/resume", b""),  # not even itself: resuming is an operator's
    ],
)
def test_a_node_may_not_drain_others_or_resume_anyone(
    client: TestClient,
    clock: FakeClock,
    store: Store,
    backend: FakeBackend,
    target: str,
    payload: bytes,
) -> None:
    backend.set_node("node1", "IDLE", "DRAIN", reason="hpresil: xid 79")
    answer = client.post(target, content=payload, headers=signed(clock, "POST", target, payload))
    assert answer.status_code == 403
    assert answer.json()["detail"].startswith("node key of node1: may not POST ")
    assert backend.writes("state") == []
    assert nothing_stored(store)


def test_every_other_write_is_an_operators(client: TestClient, clock: FakeClock) -> None:
    """A route added later is closed to node keys until NODE_WRITES names it."""
    paths = client.get("/openapi.json").json()["paths"]
    writes = [
        (method.upper(), path)
        for path, operations in paths.items()
        for method in operations
        if method not in ("get", "head")
    ]
    assert ("POST", "/v1/reports") in writes and len(writes) > len(NODE_WRITES)
    for method, path in writes:
        target = path.replace("{node}", "node1").replace("{category}", "xid")
        allowed = (method, path.replace("{node}", "{self}")) in NODE_WRITES
        answer = client.request(method, target, headers=signed(clock, method, target))
        assert (answer.status_code == 403) is not allowed, (method, path, answer.text)


@pytest.mark.parametrize(
    "header",
    [
        "HPRESIL-NODE node=node1",
        "HPRESIL-NODE node=node1, ts=soon, nonce=00112233445566778899, sig=" + "0" * 64,
        "HPRESIL-NODE node=no de, ts=1, nonce=00112233445566778899, sig=" + "0" * 64,
        "HPRESIL-NODE node=node1, node=node2, ts=1, nonce=0011223344556677, sig=" + "0" * 64,
    ],
)
def test_a_malformed_node_header_is_401(client: TestClient, header: str) -> None:
    answer = client.get("/v1/nodes", headers={"Authorization": header})
    assert answer.status_code == 401
    assert answer.json()["detail"].startswith("node key: malformed HPRESIL-NODE header")


def test_a_node_body_over_the_limit_is_413(client: TestClient, clock: FakeClock) -> None:
    payload = b"x" * ((1 << 20) + 1)
    answer = client.post(
        "/v1/reports", content=payload, headers=signed(clock, "POST", "/v1/reports", payload)
    )
    assert answer.status_code == 413


# --- before the body ---
def asked_for_body(client: TestClient, target: str, authorization: str) -> tuple[int, int]:
    """(status, how many times the app asked for the body) of a POST to ``target``."""
    asked: list[int] = []
    sent: list[Message] = []

    async def receive() -> Message:
        asked.append(1)
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    path, _, query = target.partition("?")
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"authorization", authorization.encode())],
    }
    asyncio.run(client.app(scope, receive, send))  # type: ignore[arg-type]
    return int(sent[0]["status"]), len(asked)


def test_a_stale_or_forbidden_node_request_is_refused_before_its_body_is_read(
    client: TestClient, clock: FakeClock
) -> None:
    resume = signed(clock, "POST", "/v1/nodes/node2/resume")["Authorization"]
    assert asked_for_body(client, "/v1/nodes/node2/resume", resume) == (403, 0)
    old = clock().timestamp() - 3600
    stale = signed(clock, "POST", "/v1/reports", b"{}", at=old)["Authorization"]
    assert asked_for_body(client, "/v1/reports", stale) == (401, 0)
    fresh = signed(clock, "POST", "/v1/reports", b"{}")["Authorization"]
    assert asked_for_body(client, "/v1/reports", fresh) == (422, 1)  # signed: read, judged


# --- the nonce window ---
def test_the_nonce_window_is_bounded_and_an_evicted_nonce_stays_refused() -> None:
    window = NonceWindow(SKEW_S, per_node=3)
    for i, nonce in enumerate(("a", "b", "c", "d")):
        assert window.first_use("node1", nonce, 100.0 + i, 100.0 + i)
    assert not window.first_use("node1", "a", 100.0, 104.0)  # dropped, but under the floor
    assert not window.first_use("node1", "d", 103.0, 104.0)  # seen
    assert window.first_use("node1", "e", 105.0, 105.0)  # newer than the floor
    assert window.first_use("node2", "a", 100.0, 105.0)  # per node
    assert max(len(seen) for seen in window._seen.values()) <= 3


def test_the_nonce_window_forgets_what_its_time_refuses_anyway() -> None:
    window = NonceWindow(10.0, per_node=3)
    for i, nonce in enumerate(("a", "b", "c")):
        assert window.first_use("node1", nonce, float(i), float(i))
    assert window.first_use("node1", "d", 100.0, 100.0)  # a-c out of the window: no floor
    assert window.first_use("node1", "e", 100.0, 100.0)
    assert window._floor == {}


def test_the_header_round_trips() -> None:
    header = NodeKey("node1", node_key(TOKEN, "node1"), clock=lambda: 1.0).authorization(
        "GET", "/v1/nodes", b""
    )
    scheme, _, rest = header.partition(" ")
    parsed = NodeSignature.parse(rest)
    assert (scheme, parsed.node, parsed.ts, parsed.header()) == ("HPRESIL-NODE", "node1", 1, header)
