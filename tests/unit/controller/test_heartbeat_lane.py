"""The heartbeats' lane (issue 12): quiet heartbeats signed by their node are taken
outside the route, those that arrive together in one transaction, and are answered
as the route answers them; everything else still goes to the route."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from hpresil.adapters.slurm import Slurm
from hpresil.auth import NodeKey, node_key
from hpresil.config import Config
from hpresil.controller import commands
from hpresil.controller.app import create_app
from hpresil.controller.services import Services
from hpresil.store import Store, repo
from hpresil.store.models import JobRow, RecoveryStepRow
from hpresil.vocab import Category, JobObservation, Report, state_digest
from tests.unit.controller.fakes import TOKEN, FakeClock, report, result, xid79
from tests.unit.controller.test_heartbeats import node as node_row

NODES = ("node1", "node2", "node3")
QUIET = {"accepted": True, "duplicate": False, "incidents": [], "send_state": False}
pytestmark = pytest.mark.anyio  # the tests run in an event loop, as the server's requests


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # uvicorn's


@pytest.fixture
def app(store: Store, slurm: Slurm, cfg: Config, clock: FakeClock) -> Iterator[FastAPI]:
    yield create_app(store=store, slurm=slurm, config=cfg, token=TOKEN, clock=clock)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://controller") as c:
        yield c


def services(app: FastAPI) -> Services:
    found: Services = app.state.services
    return found


def state(node: str, seq: int = 1) -> Report:
    rep = report(node, result(), seq=seq)
    return rep.model_copy(update={"digest": state_digest(rep.results, rep.gpus)})


def beat(node: str, seq: int, **more: Any) -> Report:
    rep = report(node, seq=seq)
    digest = state(node).digest
    return rep.model_copy(update={"digest": digest, "heartbeat": True, "gpus": (), **more})


async def post(
    http: httpx.AsyncClient, clock: FakeClock, rep: Report, *, signer: str | None = None
) -> httpx.Response:
    """``rep`` posted as its node's agent posts it: signed with the node's key."""
    body = json.dumps(rep.model_dump(mode="json")).encode()
    node = signer or rep.node
    key = NodeKey(node, node_key(TOKEN, node), clock=lambda: clock().timestamp())
    headers = {
        "Authorization": key.authorization("POST", "/v1/reports", body),
        "Content-Type": "application/json",
    }
    return await http.post("/v1/reports", content=body, headers=headers)


async def known(http: httpx.AsyncClient, clock: FakeClock) -> None:
    """Each node's state taken (the route's way): the lane takes its heartbeats next."""
    for name in NODES:
        assert (await post(http, clock, state(name))).status_code == 200


async def test_heartbeats_arriving_together_are_committed_together(
    app: FastAPI, http: httpx.AsyncClient, clock: FakeClock, store: Store
) -> None:
    await known(http, clock)
    lane = services(app).heartbeats
    before = lane.batches
    beats = [beat(name, seq) for seq in range(2, 12) for name in NODES]
    answers = await asyncio.gather(*(post(http, clock, b) for b in beats))
    assert [(a.status_code, a.json()) for a in answers] == [(200, QUIET)] * len(beats)
    assert 0 < lane.batches - before < len(beats)  # taken by the lane, many to a commit
    for name in NODES:
        row = node_row(store, name)
        assert (row.last_seq, row.last_report_at) == (11, clock())


async def test_a_heartbeat_sent_again_is_a_duplicate_and_one_behind_is_late(
    app: FastAPI, http: httpx.AsyncClient, clock: FakeClock, store: Store
) -> None:
    await known(http, clock)
    lane = services(app).heartbeats
    before = lane.batches
    assert (await post(http, clock, beat("node1", 5))).json() == QUIET
    again = (await post(http, clock, beat("node1", 5))).json()
    assert again == {**QUIET, "duplicate": True}
    clock.advance(10)
    assert (await post(http, clock, beat("node1", 3))).json() == QUIET  # the spool's, late
    assert lane.batches - before == 3
    row = node_row(store, "node1")
    assert (row.last_seq, row.last_report_at) == (5, clock())  # seen, not rolled back


async def test_heartbeats_with_jobs_are_observed_in_the_commit(
    app: FastAPI, http: httpx.AsyncClient, clock: FakeClock, store: Store
) -> None:
    await known(http, clock)
    lane = services(app).heartbeats
    before = lane.batches
    jobs = {"node1": 7, "node2": 7, "node3": 8}
    beats = [
        beat(name, 2, jobs=(JobObservation(job_id=job, step=40 + i, lead=i == 0),))
        for i, (name, job) in enumerate(jobs.items())
    ]
    answers = await asyncio.gather(*(post(http, clock, b) for b in beats))
    assert [a.json() for a in answers] == [QUIET] * 3
    assert lane.batches > before
    with store.read() as s:
        seen = {row.job_id: row.last_seen_at for row in s.scalars(select(JobRow))}
    assert seen == {7: clock(), 8: clock()}


async def test_a_digest_the_controller_does_not_hold_asks_for_the_state_in_the_lane(
    app: FastAPI, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    await known(http, clock)
    other = beat("node2", 2).model_copy(update={"digest": "0" * 64})
    assert (await post(http, clock, other)).json() == {**QUIET, "send_state": True}


async def test_what_the_lane_does_not_take_is_answered_by_the_route(
    app: FastAPI, http: httpx.AsyncClient, clock: FakeClock, store: Store
) -> None:
    await known(http, clock)
    lane = services(app).heartbeats
    before = lane.batches
    # another node's heartbeat, signed by node1's key: the route's 403
    answer = await post(http, clock, beat("node2", 2), signer="node1")
    assert answer.status_code == 403 and "'node2' is not 'node1'" in answer.json()["detail"]
    # a time ahead of the controller's clock: the route's 422 naming the field
    ahead = beat("node1", 2).model_copy(update={"sent_at": clock() + timedelta(hours=1)})
    answer = await post(http, clock, ahead)
    assert answer.status_code == 422 and answer.json()["detail"].startswith("sent_at:")
    # a body that is no report: the route's 422 naming the field
    body = json.loads(json.dumps(beat("node1", 2).model_dump(mode="json")))
    body["seq"] = "x"
    raw = json.dumps(body).encode()
    key = NodeKey("node1", node_key(TOKEN, "node1"), clock=lambda: clock().timestamp())
    headers = {
        "Authorization": key.authorization("POST", "/v1/reports", raw),
        "Content-Type": "application/json",
    }
    answer = await http.post("/v1/reports", content=raw, headers=headers)
    assert answer.status_code == 422 and answer.json()["detail"].startswith("seq:")
    assert lane.batches == before  # none of them came near the lane's commit
    assert node_row(store, "node1").last_seq == 1  # and nothing was taken


async def test_a_node_with_an_open_incident_goes_the_whole_way(
    app: FastAPI, http: httpx.AsyncClient, clock: FakeClock, store: Store
) -> None:
    await known(http, clock)
    xid = report("node1", xid79(), seq=2).model_copy(update={"digest": "1" * 64})
    assert (await post(http, clock, xid)).json()["incidents"] == [1]
    # its heartbeat still carries the fault: the lane hands it to the route, judged there
    faulted = beat("node1", 3, results=(xid79(),))
    answer = await post(http, clock, faulted)
    assert answer.status_code == 200 and answer.json()["incidents"] == [1]
    # a quiet one from it: the lane's commit finds the incident open and gives it back
    answer = await post(http, clock, beat("node1", 4))
    assert answer.status_code == 200 and answer.json()["accepted"] is True
    assert node_row(store, "node1").last_seq == 4


async def test_a_node_with_a_command_waiting_gets_it_with_its_heartbeats_answer(
    app: FastAPI,
    http: httpx.AsyncClient,
    clock: FakeClock,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A quiet heartbeat of a node whose recovery ladder waits on its agent leaves the
    lane (whose answer has no commands) for the route, which gives the command."""
    monkeypatch.setattr(commands, "REFRESH_S", 0.0)  # no second's wait for the list
    await known(http, clock)
    with store.write() as s:
        incident = repo.new_incident(s, "node2", clock(), category=Category.HBM_ECC)
        s.add(RecoveryStepRow(incident=incident, rung="burnin", why="t", started_at=clock()))
    lane = services(app).heartbeats
    before = lane.batches
    answered = (await post(http, clock, beat("node2", 2))).json()
    assert [c["kind"] for c in answered["commands"]] == ["burnin"]
    assert lane.batches == before  # taken by the route
    assert (await post(http, clock, beat("node3", 2))).json() == QUIET
    assert lane.batches == before + 1  # another node's heartbeat still takes the lane
