"""GET /v1/nodes with filters and pages: a Slurm host list, a state, the unhealthy
nodes, ``limit`` and ``after`` in natural order, the next page named in a header."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hpresil.controller import node_list
from hpresil.controller.node_list import NEXT_AFTER
from hpresil.store import Store, repo
from hpresil.store.models import NodeRow
from hpresil.vocab import Category, Health
from tests.unit.controller.fakes import FakeClock

OK = [{"check": "fabric", "status": "ok", "evidence": {"status": "success"}}]


def results(status: str, evidence: Any = None) -> list[dict[str, Any]]:
    return [*OK, {"check": "temperature", "status": status, "evidence": evidence or {}}]


def add(store: Store, clock: FakeClock, name: str, **fields: Any) -> None:
    """A stored node that reported just now with healthy results, unless told otherwise."""
    fields = {"last_report_at": clock.now, "last_results": OK, "slurm_state": "IDLE", **fields}
    with store.write() as s:
        s.add(NodeRow(name=name, first_seen_at=clock.now, drained_by_hpresil=False, **fields))


def fleet(store: Store, clock: FakeClock) -> None:
    """gpu1 .. gpu12, and login1: gpu3 drained with a hardware incident open, gpu5
    warns, gpu7 fails a check that does not drain, gpu9 is stale, gpu11 never reported,
    gpu12 has "fail" in its evidence only (healthy)."""
    for i in range(1, 13):
        add(store, clock, f"gpu{i}", slurm_state="ALLOCATED" if i % 2 else "MIXED")
    add(store, clock, "login1")
    with store.write() as s:
        node = {n.name: n for n in repo.nodes(s)}
        node["gpu3"].slurm_state = "MIXED+DRAIN"
        repo.new_incident(s, "gpu3", clock.now, category=Category.HBM_ECC, hardware=True)
        node["gpu5"].last_results = results("warn")
        node["gpu7"].last_results = results("fail")
        node["gpu9"].last_report_at = clock.now - timedelta(hours=1)
        node["gpu11"].last_report_at, node["gpu11"].last_results = None, None
        node["gpu12"].last_results = results("ok", {"mode": "fail"})


def names(answer: Any) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [n["name"] for n in answer.json()]


def test_without_parameters_every_node_in_natural_order(
    client: TestClient, store: Store, clock: FakeClock
) -> None:
    fleet(store, clock)
    answer = client.get("/v1/nodes")
    assert names(answer) == [*(f"gpu{i}" for i in range(1, 13)), "login1"]
    assert NEXT_AFTER not in answer.headers


def test_health_as_the_stored_evidence_says(
    client: TestClient, store: Store, clock: FakeClock
) -> None:
    fleet(store, clock)
    health = {n["name"]: n["health"] for n in client.get("/v1/nodes").json()}
    assert {k: v for k, v in health.items() if v != "ok"} == {
        "gpu3": "fail",  # an open hardware incident
        "gpu5": "warn",
        "gpu7": "fail",
        "gpu9": "stale",
        "gpu11": "unknown",
    }
    gpu3 = client.get("/v1/nodes", params={"nodes": "gpu3"}).json()[0]
    assert gpu3["open_incident"] == 1 and gpu3["slurm_state"] == "MIXED+DRAIN"


def test_a_host_list_a_state_and_the_unhealthy_narrow_it(
    client: TestClient, store: Store, clock: FakeClock
) -> None:
    fleet(store, clock)
    assert names(client.get("/v1/nodes", params={"nodes": "gpu[2-4,10],login1,nope9"})) == [
        "gpu2",
        "gpu3",
        "gpu4",
        "gpu10",
        "login1",
    ]
    assert names(client.get("/v1/nodes", params={"state": "drain"})) == ["gpu3"]
    mixed = names(client.get("/v1/nodes", params={"state": "Mixed"}))
    assert mixed == ["gpu2", "gpu3", "gpu4", "gpu6", "gpu8", "gpu10", "gpu12"]
    unhealthy = client.get("/v1/nodes", params={"unhealthy": "true"})
    assert names(unhealthy) == ["gpu3", "gpu5", "gpu7", "gpu9", "gpu11"]
    both = {"unhealthy": "true", "state": "allocated", "nodes": "gpu[1-9]"}
    assert names(client.get("/v1/nodes", params=both)) == ["gpu5", "gpu7", "gpu9"]


def test_pages_walk_every_node_once_in_order(
    client: TestClient, store: Store, clock: FakeClock
) -> None:
    fleet(store, clock)
    seen, after, pages = [], None, 0
    while True:
        params = {"limit": "5", **({"after": after} if after else {})}
        answer = client.get("/v1/nodes", params=params)
        seen += names(answer)
        pages += 1
        after = answer.headers.get(NEXT_AFTER)
        if after is None:
            break
        assert after == seen[-1]
    assert pages == 3 and seen == names(client.get("/v1/nodes"))
    last = client.get("/v1/nodes", params={"limit": "13"})
    assert len(names(last)) == 13 and NEXT_AFTER not in last.headers


def test_pages_of_unhealthy_nodes(client: TestClient, store: Store, clock: FakeClock) -> None:
    fleet(store, clock)
    first = client.get("/v1/nodes", params={"unhealthy": "true", "limit": "2"})
    assert names(first) == ["gpu3", "gpu5"] and first.headers[NEXT_AFTER] == "gpu5"
    rest = {"unhealthy": "true", "limit": "3", "after": "gpu5"}
    second = client.get("/v1/nodes", params=rest)
    assert names(second) == ["gpu7", "gpu9", "gpu11"] and NEXT_AFTER not in second.headers


def test_a_bad_or_huge_host_list_is_refused_in_one_line(client: TestClient) -> None:
    for hosts in ("gpu[1-x]", "gpu[1-1000][1-1000]"):
        answer = client.get("/v1/nodes", params={"nodes": hosts})
        assert answer.status_code == 422
        assert answer.json()["detail"].startswith("query.nodes:")
    assert client.get("/v1/nodes", params={"limit": "0"}).status_code == 422


def test_natural_order_is_total() -> None:
    assert node_list.order(["n1", "n01", "n10", "n2"]) == ["n01", "n1", "n2", "n10"]


def test_a_host_list_is_counted_before_it_is_expanded() -> None:
    assert node_list.expand_hosts("gpu[01-03],login") == ["gpu01", "gpu02", "gpu03", "login"]
    with pytest.raises(node_list.BadHostList, match="more than"):
        node_list.expand_hosts("a[1-400],b[1-1000][1-100]")


@pytest.mark.parametrize(
    ("stored", "health"),
    [
        (None, Health.OK),
        (json.dumps(None), Health.OK),
        (json.dumps(OK), Health.OK),
        (json.dumps(results("ok", {"last": "fail", "was": "warn"})), Health.OK),
        (json.dumps(results("warn")), Health.WARN),
        (json.dumps(results("fail")), Health.FAIL),
        (json.dumps([*results("warn"), *results("fail")]), Health.FAIL),
        (json.dumps(results("unknown")), Health.OK),
    ],
)
def test_the_worst_stored_result(stored: str | None, health: Health) -> None:
    assert node_list.results_health(stored) is health
