"""The API's edge (issue 9, defects 2, 7 and 9): what it refuses, with a one-line 422
naming the field and nothing stored; and the bearer token checked before the body."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message

from hpresil.agent.jobs import job_observations
from hpresil.cli.main import main
from hpresil.host.job_progress import CheckpointSeen, Progress
from hpresil.host.slurm_jobs import LocalJob, LocalJobs
from hpresil.store import Store
from hpresil.store.models import NodeRow, ReportRow
from hpresil.vocab import Status
from hpresil.vocab.snapshot import Snapshot
from tests.unit.controller.fakes import TOKEN, report, result

BIG = 2**63  # past the largest BIGINT
PAST_INT = 2**31  # past the largest INTEGER: seq, job ids, steps are INTEGER columns


def body(*results: Any, jobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = report("node1", *results).model_dump(mode="json")
    payload["jobs"] = jobs or []
    return payload


def stored(store: Store) -> tuple[int, int]:
    with store.read() as s:
        reports = s.scalar(select(func.count()).select_from(ReportRow)) or 0
        nodes = s.scalar(select(func.count()).select_from(NodeRow)) or 0
    return int(reports), int(nodes)


def refused(client: TestClient, payload: dict[str, Any], field: str) -> str:
    answer = client.post("/v1/reports", json=payload)
    assert answer.status_code == 422, answer.text
    detail: str = answer.json()["detail"]
    assert "\n" not in detail and detail.startswith(f"{field}: "), detail
    return detail


# --- defect 2: naive and absurd times ---
def test_a_naive_observed_at_is_refused_and_later_reports_still_pass(
    client: TestClient, store: Store
) -> None:
    naive = body(result(Status.OK))
    naive["results"][0]["observed_at"] = "2026-11-22T08:00:00"
    refused(client, naive, "results.0.observed_at")
    assert stored(store) == (0, 0)
    for _ in range(2):  # the same check and GPU again, as the agent sends it: aware
        assert client.post("/v1/reports", json=body(result(Status.OK))).status_code == 200


@pytest.mark.parametrize(
    ("where", "field"),
    [(("sent_at",), "sent_at"), (("jobs", 0, "progress_at"), "jobs.0.progress_at")],
)
def test_other_naive_times_are_refused(
    client: TestClient, store: Store, where: tuple[Any, ...], field: str
) -> None:
    payload = body(jobs=[{"job_id": 42, "progress_at": "2026-11-22T07:59:00Z"}])
    put(payload, where, "2026-11-22T08:00:00")
    refused(client, payload, field)
    assert stored(store) == (0, 0)


@pytest.mark.parametrize(
    ("where", "value", "field"),
    [
        (("results", 0, "observed_at"), "2026-11-22T09:00:00Z", "results.0.observed_at"),
        (("sent_at",), "9999-12-31T23:59:59Z", "sent_at"),
        (("results", 0, "observed_at"), "1999-12-31T23:59:59Z", "results.0.observed_at"),
        (("sent_at",), "0001-01-01T00:00:00+01:00", "sent_at"),
    ],
)
def test_times_far_ahead_of_the_controller_or_before_2000_are_refused(
    client: TestClient, store: Store, where: tuple[Any, ...], value: str, field: str
) -> None:
    payload = body(result(Status.OK))
    put(payload, where, value)
    refused(client, payload, field)
    assert stored(store) == (0, 0)


def test_an_agent_a_little_ahead_and_a_job_with_old_files_are_accepted(
    client: TestClient, store: Store
) -> None:
    payload = body(
        result(Status.OK),
        jobs=[{"job_id": 42, "checkpoint": "/ckpt/7", "checkpoint_at": "1970-01-01T00:00:00Z"}],
    )
    payload["sent_at"] = payload["results"][0]["observed_at"] = "2026-11-22T08:01:00+01:00"
    assert client.post("/v1/reports", json=payload).status_code == 200
    payload = body(result(Status.WARN))  # a change: stored
    payload["sent_at"] = "2026-11-22T08:04:00Z"  # within the default skew of 300 s
    assert client.post("/v1/reports", json=payload).status_code == 200
    assert stored(store) == (2, 1)


# --- defect 7: integers past their columns, deep evidence, calendar ends ---
@pytest.mark.parametrize("value", [BIG, PAST_INT])
@pytest.mark.parametrize(
    "where",
    [
        ("seq",),
        ("jobs", 0, "job_id"),
        ("jobs", 0, "restart_count"),
        ("jobs", 0, "step"),
        ("jobs", 0, "checkpoint_step"),
        ("results", 0, "xid"),
        ("results", 0, "gpu", "index"),
    ],
)
def test_integers_past_their_column_are_refused(
    client: TestClient, store: Store, where: tuple[Any, ...], value: int
) -> None:
    payload = body(result(Status.OK), jobs=[{"job_id": 42}])
    put(payload, where, value)
    refused(client, payload, ".".join(str(p) for p in where))
    assert stored(store) == (0, 0)


@pytest.mark.parametrize("path", ["/v1/incidents/{}", "/v1/jobs/{}"])
@pytest.mark.parametrize("value", [BIG, PAST_INT])
def test_ids_in_paths_past_their_column_are_refused(
    client: TestClient, path: str, value: int
) -> None:
    answer = client.get(path.format(value))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("path."), answer.text


@pytest.mark.parametrize(
    "since", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2027-01-01T00:00:00Z"]
)
def test_since_at_the_ends_of_the_calendar_or_in_the_future_is_refused(
    client: TestClient, since: str
) -> None:
    answer = client.get("/v1/stats/mttf", params={"since": since})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("query.since: "), answer.text
    assert client.get("/v1/stats/mttf", params={"since": "2026-01-01T00:00:00Z"}).is_success


def nested(depth: int) -> dict[str, Any]:
    inner: dict[str, Any] = {}
    for _ in range(depth):
        inner = {"a": inner}
    return inner


@pytest.mark.parametrize(
    "evidence", [nested(500), nested(20), {f"k{i}": i for i in range(5000)}, {"l": [[1]] * 2000}]
)
def test_evidence_too_deep_or_too_large_is_refused(
    client: TestClient, store: Store, evidence: dict[str, Any]
) -> None:
    payload = body(result(Status.OK))
    payload["results"][0]["evidence"] = evidence
    refused(client, payload, "results.0.evidence")
    assert stored(store) == (0, 0)


def put(payload: dict[str, Any], where: tuple[Any, ...], value: object) -> None:
    target: Any = payload
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value


# --- defect 9: the token before the body ---
def test_an_unauthenticated_request_with_a_bad_body_is_401_not_422(client: TestClient) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer " + "x" * 32}):
        answer = client.post("/v1/reports", content=b"{not json", headers=headers)
        assert answer.status_code == 401, answer.text
        assert answer.json() == {"detail": "missing or wrong bearer token"}
        assert answer.headers["WWW-Authenticate"] == "Bearer"


def call(app: ASGIApp, headers: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """(status, how many times the app asked for the body) of a POST /v1/reports."""
    asked: list[int] = []
    sent: list[Message] = []

    async def receive() -> Message:
        asked.append(1)
        return {"type": "http.request", "body": b'{"results": "nope"}', "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/reports",
        "raw_path": b"/v1/reports",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"]), len(asked)


def test_the_body_of_an_unauthenticated_request_is_never_read(client: TestClient) -> None:
    assert call(client.app, []) == (401, 0)
    assert call(client.app, [(b"authorization", b"Bearer " + b"x" * 32)]) == (401, 0)
    status, asked = call(client.app, [(b"authorization", f"Bearer {TOKEN}".encode())])
    assert status == 422 and asked >= 1  # with the token, the body is read and judged


@pytest.fixture
def readable_dir() -> Iterator[Path]:
    """A folder anyone may enter (pytest's tmp_path is root's only)."""
    path = Path(tempfile.mkdtemp(prefix="hpresil-edge-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_nobody(argv: list[str]) -> tuple[int, str]:
    """``main(argv)`` in a child that has become ``nobody``: (exit code, stderr)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 70
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            sys.stderr = os.fdopen(w, "w")
            code = main(argv)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as fh:
        err = fh.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_drain_by_a_user_who_cannot_read_the_token_is_one_line(
    readable_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(readable_dir))  # nor MUNGE: no `munge` (test_munge_cli)
    token = readable_dir / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    config = readable_dir / "hpresil.toml"
    config.write_text(f'[controller]\nurl = "http://127.0.0.1:9"\ntoken_file = "{token}"\n')
    config.chmod(0o644)
    code, err = as_nobody(["--config", str(config), "drain", "node1", "--reason", "bad fan"])
    assert err.splitlines() == [f"hpresil: token file {token}: permission denied (run as root)"]
    assert code == 2


# --- the agent's own reports still pass the edge ---
def test_a_job_with_steps_or_ids_past_32_bits_does_not_stop_the_agents_report(
    client: TestClient,
) -> None:
    at = datetime(2026, 11, 22, 7, 59, tzinfo=UTC)
    huge = LocalJob(
        job_id=42,
        processes=(),
        progress=Progress(at, "heartbeat", step=2**40),  # a job counting tokens as steps
        checkpoint=CheckpointSeen("/ckpt/9", -(2**40), datetime(1970, 1, 1, tzinfo=UTC)),
    )
    forged = LocalJob(job_id=2**40, processes=())  # SLURM_JOB_ID any process may set
    facts = MappingProxyType({LocalJobs: LocalJobs("node1", (huge, forged))})
    jobs = job_observations(Snapshot(node="node1", taken_at=at, facts=facts))
    assert [(j.job_id, j.step, j.checkpoint_step) for j in jobs] == [(42, None, None)]
    payload = body(result(Status.OK))
    payload["jobs"] = [j.model_dump(mode="json") for j in jobs]
    assert client.post("/v1/reports", json=payload).status_code == 200
