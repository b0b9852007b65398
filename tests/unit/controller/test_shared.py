"""Faults that share a component (issue 11): nodes under one switch, rack or power
domain failing alike at once make one shared incident; the nodes are still drained,
their MTTF stays clean, the breaker counts the component once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hpresil.adapters.slurm import Slurm
from hpresil.config import Config, ControllerConfig, JobsConfig, PolicyConfig, SlurmConfig
from hpresil.config.limits import LimitsConfig
from hpresil.config.topology import TopologyConfig
from hpresil.controller.app import create_app
from hpresil.controller.remediation import Executor
from hpresil.controller.topology import Component, Fabric
from hpresil.errors import ConfigError, SlurmError
from hpresil.store import Store
from hpresil.vocab import Action, Category, Status
from tests.unit.controller.fakes import TOKEN, FakeBackend, FakeClock, report, result, xid79

NODES = ("node1", "node2", "node3", "node4")
LEAVES = [
    Component("switch", "leaf1", frozenset({"node1", "node2"})),
    Component("switch", "leaf2", frozenset({"node3", "node4"})),
]
SPINE = Component("switch", "spine", frozenset(NODES))


@pytest.fixture
def cfg(db_url: str, request: pytest.FixtureRequest) -> Config:
    """The policy from a ``policy`` mark; alerts queued, never sent."""
    mark = request.node.get_closest_marker("policy")
    given = {"limits": LimitsConfig(max_out_pct=100), **(mark.kwargs if mark else {})}
    policy = PolicyConfig(expedite_requeue=False, **given)
    jobs = JobsConfig(webhook_url="http://127.0.0.1:9/hook")
    return Config(controller=ControllerConfig(database=db_url), policy=policy, jobs=jobs)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(*NODES)


@pytest.fixture
def executor(store: Store, slurm: Slurm, cfg: Config, clock: FakeClock) -> Executor:
    return Executor(store, slurm, cfg.policy, jobs=cfg.jobs, clock=clock)


@pytest.fixture
def fabric(request: pytest.FixtureRequest) -> Fabric | None:
    """The leaves, and whatever a ``fabric`` mark adds or puts instead."""
    mark = request.node.get_closest_marker("fabric")
    if mark is not None and mark.args == (None,):
        return None
    return Fabric.fixed(mark.args[0] if mark else LEAVES, mark.kwargs.get("cfg") if mark else None)


@pytest.fixture
def client(
    store: Store, slurm: Slurm, cfg: Config, clock: FakeClock, executor: Executor, fabric: Any
) -> Iterator[TestClient]:
    app = create_app(
        store=store,
        slurm=slurm,
        config=cfg,
        token=TOKEN,
        clock=clock,
        wake=executor.wake,
        fabric=fabric,
    )
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def ib_down() -> Any:
    return result(Status.FAIL, Action.DRAIN, Category.IB_NETWORK, check="ib", index=None)


def post(client: TestClient, node: str, *results: Any) -> None:
    answer = client.post("/v1/reports", json=report(node, *results).model_dump(mode="json"))
    assert answer.status_code == 200, answer.text


def shared(client: TestClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get("/v1/shared-faults").json()
    return found


def incident(client: TestClient, node: str) -> dict[str, Any]:
    found: dict[str, Any] = client.get(f"/v1/incidents?node={node}").json()[-1]
    return found


def test_two_nodes_of_one_leaf_failing_alike_are_one_switch_incident(
    client: TestClient, executor: Executor, backend: FakeBackend
) -> None:
    post(client, "node1", ib_down())
    post(client, "node2", ib_down())
    (fault,) = shared(client)
    one, two = incident(client, "node1"), incident(client, "node2")
    assert (fault["kind"], fault["component"], fault["category"]) == (
        "switch",
        "leaf1",
        "ib_network",
    )
    assert (fault["nodes"], fault["incidents"], fault["size"]) == (
        ["node1", "node2"],
        [one["id"], two["id"]],
        2,
    )
    assert fault["status"] == "open" and "2 of the 2 nodes under switch leaf1" in fault["why"]
    for found in (one, two):
        assert found["shared"] == {"id": fault["id"], "kind": "switch", "component": "leaf1"}
        assert found["hardware"] is False  # not the node's failure
    executor.run_due()
    drains = {c[1]: c[3] for c in backend.writes("state") if c[2] == "drain"}
    assert set(drains) == {"node1", "node2"}  # a dead switch leaves its nodes useless
    assert drains["node2"].endswith("ib_network switch leaf1")


def test_one_node_failing_alone_is_its_own_fault(client: TestClient) -> None:
    post(client, "node1", ib_down())
    post(client, "node3", ib_down())  # under the other leaf
    assert shared(client) == []
    assert incident(client, "node1")["shared"] is None
    assert incident(client, "node1")["hardware"] is True


def test_a_fault_the_component_cannot_cause_stays_the_nodes(client: TestClient) -> None:
    post(client, "node1", xid79())  # a GPU off the bus: not an InfiniBand switch's doing
    post(client, "node2", xid79())
    assert shared(client) == []


@pytest.mark.fabric([*LEAVES, SPINE])
def test_across_two_leaves_the_spine_takes_the_leaf_over(client: TestClient) -> None:
    post(client, "node1", ib_down())
    post(client, "node2", ib_down())
    (leaf,) = shared(client)
    post(client, "node3", ib_down())
    spine, merged = shared(client)  # newest first
    assert (spine["component"], spine["nodes"]) == ("spine", ["node1", "node2", "node3"])
    assert (merged["id"], merged["merged_into"], merged["status"]) == (
        leaf["id"],
        spine["id"],
        "resolved",
    )
    post(client, "node4", ib_down())
    assert [f["component"] for f in shared(client)] == ["spine", "leaf1"]
    assert shared(client)[0]["nodes"] == list(NODES)
    assert {incident(client, n)["shared"]["component"] for n in NODES} == {"spine"}


BIG = Component("switch", "big", frozenset({*NODES, *(f"x{i}" for i in range(5, 11))}))


@pytest.mark.fabric([BIG])
def test_two_nodes_of_a_big_switch_are_too_small_a_share(client: TestClient) -> None:
    post(client, "node1", ib_down())
    post(client, "node2", ib_down())  # 2 of 10: below min_share 0.25
    assert shared(client) == []


def test_the_nodes_mttf_stays_clean_and_the_downtime_counts(
    client: TestClient, executor: Executor, clock: FakeClock
) -> None:
    post(client, "node4")  # healthy throughout
    post(client, "node1", ib_down())
    post(client, "node2", ib_down())
    post(client, "node3", ib_down())  # alone under leaf2: its own failure
    executor.run_due()
    clock.advance(3600)
    rows = {r["key"]: r for r in client.get("/v1/stats/mttf?by=node").json()["rows"]}
    assert {n: rows[n]["failures"] for n in NODES[:3]} == {"node1": 0, "node2": 0, "node3": 1}
    assert rows["node1"]["exposure_h"] < rows["node4"]["exposure_h"]


@pytest.mark.policy(limits=LimitsConfig(max_out_pct=100, breaker_nodes=1))
def test_the_breaker_counts_a_switch_once(client: TestClient, executor: Executor) -> None:
    post(client, "node1", ib_down())
    post(client, "node2", ib_down())  # two nodes, one thing gone wrong
    assert client.get("/v1/breakers").json() == []
    executor.run_due()
    assert all(incident(client, n)["drained_at"] for n in ("node1", "node2"))


@pytest.mark.policy(limits=LimitsConfig(max_out_pct=100, breaker_nodes=3))
def test_two_components_at_once_count_every_node_again(client: TestClient) -> None:
    for node in NODES[:3]:  # leaf1, and one node of leaf2: 2 units
        post(client, node, ib_down())
    assert client.get("/v1/breakers").json() == []
    post(client, "node4", ib_down())  # leaf2 too: two switches at once is no one switch
    (breaker,) = client.get("/v1/breakers").json()
    assert breaker["nodes"] == list(NODES)
    assert [f["component"] for f in shared(client)] == ["leaf2", "leaf1"]


@pytest.mark.fabric(None)
@pytest.mark.policy(limits=LimitsConfig(max_out_pct=100, breaker_nodes=1))
def test_without_the_topology_the_same_faults_trip_the_breaker(client: TestClient) -> None:
    post(client, "node1", ib_down())
    post(client, "node2", ib_down())
    (breaker,) = client.get("/v1/breakers").json()
    assert breaker["nodes"] == ["node1", "node2"]


def test_the_shared_incident_resolves_with_its_last_node(
    client: TestClient, executor: Executor
) -> None:
    post(client, "node1", ib_down())
    post(client, "node2", ib_down())
    executor.run_due()
    assert client.post("/v1/nodes/node1/resume").status_code == 200
    assert shared(client)[0]["status"] == "open"
    assert client.post("/v1/nodes/node2/resume").status_code == 200
    (fault,) = shared(client)
    assert fault["status"] == "resolved" and fault["resolved_at"]
    assert client.get("/v1/shared-faults?status=open").json() == []
    assert client.get(f"/v1/shared-faults/{fault['id']}").json()["status"] == "resolved"
    assert client.get("/v1/shared-faults/99").status_code == 404


def test_opening_a_shared_incident_alerts_once(client: TestClient) -> None:
    for node in NODES[:2]:
        post(client, node, ib_down())
    notes = [
        (n, a["why"])
        for n in ("node1", "node2")
        for a in incident(client, n)["actions"]
        if a["kind"] == "notify"
    ]
    assert notes == [
        ("node2", "shared_fault: ib_network on 2 of the 2 nodes under switch leaf1 within 600 s")
    ]


@pytest.mark.policy(limits=LimitsConfig(max_out_pct=100, breaker_nodes=1))
def test_no_shared_alert_while_the_breaker_of_its_category_is_tripped(client: TestClient) -> None:
    post(client, "node1", ib_down())
    post(client, "node3", ib_down())  # two lone nodes: the breaker trips
    post(client, "node2", ib_down())  # leaf1 now, but the breaker has said enough
    assert [f["component"] for f in shared(client)] == ["leaf1"]
    alerts = [
        a["why"].split(":")[0]
        for n in ("node1", "node2", "node3")
        for a in incident(client, n)["actions"]
        if a["kind"] == "notify"
    ]
    assert alerts == ["breaker_tripped"]


RACKS = TopologyConfig(switches="none", racks={"r1": "node[1-2]"}, min_share=1.0)


@pytest.mark.fabric([], cfg=RACKS)
def test_a_configured_rack_is_a_component(client: TestClient) -> None:
    heat = result(Status.FAIL, Action.DRAIN, Category.THERMAL_POWER, check="temperature")
    post(client, "node1", heat)
    post(client, "node2", heat)
    (fault,) = shared(client)
    assert (fault["kind"], fault["component"], fault["nodes"]) == ("rack", "r1", ["node1", "node2"])


def test_a_rack_that_is_not_a_host_list_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"topology\.racks\.r9: bad host list"):
        Fabric(TopologyConfig(racks={"r9": "gpu[1-x]"}), SlurmConfig())


def test_the_fabric_keeps_the_last_switches_when_slurm_does_not_answer() -> None:
    answers: list[Any] = [LEAVES, SlurmError(("scontrol",), 1, "", "down")]

    def read() -> list[Component]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    ticks = iter([0.0, 10.0, 400.0])
    fabric = Fabric(
        TopologyConfig(), SlurmConfig(), read_switches=read, monotonic=lambda: next(ticks)
    )
    fabric.refresh(force=False)  # read at 0 s
    fabric.refresh(force=False)  # 10 s: not due (refresh_s 300), nothing asked
    fabric.refresh(force=False)  # 400 s: Slurm fails; the leaves stay
    assert [c.name for c in fabric.current.containing("node3")] == ["leaf2"]
    assert answers == []
