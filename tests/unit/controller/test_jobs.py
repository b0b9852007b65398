"""Job resilience on the controller: ledger, budgets, exclusion, blame, hangs, idle GPUs.

Over the fake Slurm backend, the real store (SQLite and PostgreSQL), the real API and
a real webhook receiver (a local HTTP server)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hpresil.adapters.slurm import Slurm
from hpresil.config import Config, IdleJobsConfig, JobsConfig
from hpresil.controller.app import create_app
from hpresil.controller.jobs.watch import JobWatch
from hpresil.controller.reconcile import Reconciler
from hpresil.controller.remediation import Backoff, Executor
from hpresil.store import Store
from hpresil.vocab import Action, Category, CheckResult, JobObservation, Report, Status
from tests.unit.controller.fakes import T0, TOKEN, FakeBackend, FakeClock, gpu, report, xid79
from tests.webhook import Webhook

CKPT = "/lustre/alice/run1"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def jobs_cfg(webhook: Webhook) -> JobsConfig:
    return JobsConfig(
        restart_budget=2,
        hang_after_s=600,
        hang_grace_s=60,
        webhook_url=webhook.url,
        idle=IdleJobsConfig(below_pct=5, window_s=900, action="cancel"),
    )


@pytest.fixture
def config(cfg: Config, jobs_cfg: JobsConfig) -> Config:
    return cfg.model_copy(update={"jobs": jobs_cfg})


@pytest.fixture
def executor(store: Store, slurm: Slurm, config: Config, clock: FakeClock) -> Executor:
    return Executor(
        store, slurm, config.policy, jobs=config.jobs, clock=clock, backoff=Backoff(base_s=0.5)
    )


@pytest.fixture
def watch(
    store: Store, slurm: Slurm, config: Config, clock: FakeClock, executor: Executor
) -> JobWatch:
    return JobWatch(store, slurm, config.jobs, clock=clock, wake=executor.wake)


@pytest.fixture
def api(
    store: Store, slurm: Slurm, config: Config, clock: FakeClock, executor: Executor
) -> Iterator[TestClient]:
    app = create_app(
        store=store, slurm=slurm, config=config, token=TOKEN, clock=clock, wake=executor.wake
    )
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def seen(
    job_id: int,
    *,
    gpus: tuple[int, ...] = (0, 1, 2, 3),
    util: float | None = 90.0,
    progress_at: datetime | None = T0,
    step: int | None = 120,
    checkpoint_step: int | None = 100,
    checkpoint_at: datetime | None = T0 - timedelta(seconds=30),
    restart: int = 0,
) -> JobObservation:
    return JobObservation(
        job_id=job_id,
        restart_count=restart,
        lead=True,
        processes=3,
        ckpt_dir=CKPT,
        gpus=gpus,
        gpu_util_pct=util,
        progress_at=progress_at,
        progress_source="heartbeat" if progress_at else None,
        step=step,
        checkpoint=None if checkpoint_step is None else f"{CKPT}/checkpoint-{checkpoint_step}",
        checkpoint_step=checkpoint_step,
        checkpoint_at=checkpoint_at,
    )


def send(
    api: TestClient, node: str, *results: CheckResult, jobs: tuple[JobObservation, ...] = ()
) -> dict[str, Any]:
    body: Report = report(node, *results).model_copy(update={"jobs": jobs})
    answer = api.post("/v1/reports", json=body.model_dump(mode="json"))
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def job_view(api: TestClient, job_id: int) -> dict[str, Any]:
    answer = api.get(f"/v1/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def wait_for(condition: Any, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def app_xid(index: int = 1, xid: int = 13) -> CheckResult:
    return CheckResult(
        check="xid",
        status=Status.WARN,
        action=Action.NONE,
        category=Category.APP,
        summary=f"XID {xid} Graphics Engine Exception on GPU {index}",
        gpu=gpu(index),
        xid=xid,
        observed_at=T0,
    )


# --- the ledger and `hpresil jobs` ---
def test_agent_reports_make_a_protected_job_with_its_checkpoint_and_lost_work(
    api: TestClient, clock: FakeClock
) -> None:
    send(api, "node2", jobs=(seen(41),))
    clock.advance(20)
    listed = api.get("/v1/jobs").json()
    assert [j["job_id"] for j in listed] == [41]
    job = listed[0]
    assert job["protected"] and job["ckpt_dir"] == CKPT
    assert job["checkpoint"] == f"{CKPT}/checkpoint-100" and job["checkpoint_step"] == 100
    assert job["step"] == 120 and job["gpus"] == 4 and job["gpu_util_pct"] == 90.0
    assert job["budget"] == 2  # jobs.restart_budget


def test_slurm_comment_protects_a_job_and_sets_its_budget(
    api: TestClient, watch: JobWatch, backend: FakeBackend
) -> None:
    job = backend.add_job(42, "node1")
    backend.jobs_by_id[42] = replace(job, comment=f"run1 hpresil:ckpt={CKPT},budget=7")
    backend.add_job(43, "node1")  # no hpresil comment, never seen by an agent: not followed
    watch.run_once()
    listed = api.get("/v1/jobs").json()
    assert [(j["job_id"], j["budget"], j["status"], j["ckpt_dir"]) for j in listed] == [
        (42, 7, "running", CKPT)
    ]


# --- requeue done right ---
def test_requeue_keeps_the_job_off_the_failed_node_and_records_the_lost_work(
    api: TestClient, executor: Executor, backend: FakeBackend, clock: FakeClock
) -> None:
    backend.add_job(51, "node2")
    send(api, "node2", xid79(), jobs=(seen(51),))
    executor.run_due()
    wait_for(lambda: backend.writes("update"), "the requeued job's update")
    assert backend.writes("update") == [("update", 51, {"ExcNodeList": "node2"})]
    interruption = job_view(api, 51)["interruptions"][0]
    assert interruption["node"] == "node2" and interruption["incident"] == 1
    assert interruption["checkpoint_step"] == 100
    assert interruption["lost_s"] == pytest.approx(30.0)  # the checkpoint was 30 s old


def test_the_resumed_incarnation_makes_the_lost_work_exact(
    api: TestClient, executor: Executor, backend: FakeBackend, clock: FakeClock
) -> None:
    backend.add_job(50, "node2")
    send(
        api,
        "node2",
        xid79(),
        jobs=(seen(50, checkpoint_step=90, checkpoint_at=T0 - timedelta(seconds=40)),),
    )
    executor.run_due()
    assert job_view(api, 50)["interruptions"][0]["lost_s"] == pytest.approx(40.0)  # estimate
    clock.advance(5)
    again = seen(50, restart=1).model_copy(
        update={
            "resumed_from": f"{CKPT}/checkpoint-100",
            "resumed_from_step": 100,
            "resumed_from_at": T0 - timedelta(seconds=12),
        }
    )
    send(api, "node3", jobs=(again,))
    stop = job_view(api, 50)["interruptions"][0]
    assert stop["checkpoint"] == f"{CKPT}/checkpoint-100" and stop["checkpoint_step"] == 100
    assert stop["lost_s"] == pytest.approx(12.0)  # what it really resumed from


def test_nodes_under_suspicion_are_excluded_too(
    api: TestClient, executor: Executor, backend: FakeBackend
) -> None:
    send(api, "node3", xid79())  # node3 has an open hardware incident
    executor.run_due()
    backend.add_job(52, "node2")
    send(api, "node2", xid79(), jobs=(seen(52),))
    executor.run_due()
    wait_for(lambda: backend.writes("update"), "the requeued job's update")
    assert backend.writes("update") == [("update", 52, {"ExcNodeList": "node2,node3"})]


def test_a_second_requeue_lifts_the_first_exclusion_when_it_would_starve_the_job(
    api: TestClient,
    executor: Executor,
    backend: FakeBackend,
    reconciler: Reconciler,
    watch: JobWatch,
) -> None:
    job = replace(backend.add_job(53, "node1"), excluded=("node9",))
    backend.jobs_by_id[53] = replace(job, comment=f"hpresil:ckpt={CKPT},budget=9")
    watch.run_once()
    send(api, "node1", xid79(), jobs=(seen(53),))
    executor.run_due()
    wait_for(lambda: backend.writes("update"), "the first update")
    assert backend.writes("update")[-1] == ("update", 53, {"ExcNodeList": "node1,node9"})
    backend.set_node("node1", "IDLE")  # repaired and back, but a suspect for a day
    reconciler.run_once()  # its incident is resolved
    backend.start_job(53, "node2", T0)
    send(api, "node2", xid79(), jobs=(seen(53),))
    executor.run_due()
    wait_for(lambda: len(backend.writes("update")) == 2, "the second update")
    # node1 and node3 are usable: node1 stays excluded as a suspect (an incident today)
    assert backend.writes("update")[-1] == ("update", 53, {"ExcNodeList": "node1,node2,node9"})
    backend.set_node("node3", "IDLE", "DRAIN", reason="admin")  # now only node1 is left
    backend.start_job(53, "node1", T0)
    send(api, "node1", xid79(), jobs=(seen(53),))
    executor.run_due()
    wait_for(lambda: len(backend.writes("update")) == 3, "the third update")
    # keeping off node2 (a suspect) would leave nothing: only the failed node, the
    # job's own exclusion kept, the earlier ones lifted
    assert backend.writes("update")[-1] == ("update", 53, {"ExcNodeList": "node1,node9"})


def test_a_job_past_its_budget_is_requeued_held_and_its_owner_told(
    api: TestClient, executor: Executor, backend: FakeBackend, webhook: Webhook
) -> None:
    backend.jobs_by_id[53] = replace(backend.add_job(53, "node2"), restart_count=2)
    send(api, "node2", xid79(), jobs=(seen(53, restart=2),))
    executor.run_due()
    assert ("requeuehold", 53) in backend.calls and ("requeue", 53) not in backend.calls
    view = job_view(api, 53)
    assert view["status"] == "held" and "restart budget (2 of 2)" in view["held_reason"]
    assert webhook.kinds() == [("job_held", 53)]
    assert webhook.events[0]["user"] == "alice" and webhook.events[0]["why"] == view["held_reason"]


def test_a_job_slurm_requeued_past_its_budget_is_held(
    api: TestClient, watch: JobWatch, executor: Executor, backend: FakeBackend, webhook: Webhook
) -> None:
    backend.add_job(54, "node1")
    send(api, "node1", jobs=(seen(54),))
    watch.run_once()
    for _ in range(3):  # the node died three times: Slurm requeued it by itself
        backend.requeue(54)
        backend.start_job(54, "node1", T0)
        watch.run_once()
    backend.requeue(54)
    watch.run_once()  # PENDING with 4 restarts, budget 2
    executor.run_due()
    assert ("hold", 54) in backend.calls
    assert job_view(api, 54)["status"] == "held"
    assert webhook.kinds() == [("job_held", 54)]


def test_a_webhook_that_is_down_is_retried_not_lost(
    api: TestClient, executor: Executor, backend: FakeBackend, webhook: Webhook, clock: FakeClock
) -> None:
    webhook.status = 503
    backend.jobs_by_id[55] = replace(backend.add_job(55, "node2"), restart_count=5)
    send(api, "node2", xid79(), jobs=(seen(55),))
    executor.run_due()
    notify = [a for a in api.get("/v1/incidents/1").json()["actions"] if a["kind"] == "notify"]
    assert notify[0]["status"] == "pending" and "answered 503" in notify[0]["error"]
    webhook.status = 200
    clock.advance(5)
    executor.run_due()
    assert webhook.kinds() == [("job_held", 55)]


# --- blame ---
def test_the_same_failure_on_three_nodes_is_the_jobs_fault(
    api: TestClient, executor: Executor, backend: FakeBackend, webhook: Webhook
) -> None:
    backend.add_job(56, "node1")
    for node in ("node1", "node2"):
        backend.start_job(56, node, T0)
        send(api, node, xid79(), jobs=(seen(56),))
        executor.run_due()
    backend.start_job(56, "node3", T0)
    answer = send(api, "node3", xid79(), jobs=(seen(56),))
    executor.run_due()
    assert (
        "state",
        "node3",
        "drain",
        "hpresil: #3 gpu_lost_pcie xid 79 gpu 3",
    ) not in backend.calls
    assert "DRAIN" not in backend.nodes_by_name["node3"].states
    blamed = api.get(f"/v1/incidents/{answer['incidents'][0]}").json()
    assert blamed["job_id"] == 56 and blamed["hardware"] is False
    assert (
        blamed["status"] == "resolved" and "on 3 nodes (node1, node2, node3)" in blamed["summary"]
    )
    assert ("requeuehold", 56) in backend.calls
    assert job_view(api, 56)["blamed"] is not None
    assert webhook.kinds() == [("job_held", 56)]
    mttf = api.get("/v1/stats/mttf").json()["total"]
    assert mttf["failures"] == 2  # the two drained nodes; not the blamed third


def test_application_xids_hold_the_protected_job_and_drain_nothing(
    api: TestClient, executor: Executor, backend: FakeBackend, webhook: Webhook
) -> None:
    backend.add_job(57, "node2")
    backend.add_job(58, "node2")
    other = seen(58, gpus=(4, 5, 6, 7))
    send(api, "node2", app_xid(index=1), jobs=(seen(57), other))
    executor.run_due()
    assert backend.writes("state") == []  # the node is not drained
    assert ("requeuehold", 57) in backend.calls and ("requeuehold", 58) not in backend.calls
    assert webhook.kinds() == [("job_held", 57)]
    assert "application XID 13 on GPU 1" in job_view(api, 57)["blamed"]


def test_application_xid_beside_a_hardware_fault_blames_the_node(
    api: TestClient, executor: Executor, backend: FakeBackend
) -> None:
    backend.add_job(59, "node2")
    send(api, "node2", xid79(index=1), app_xid(index=1), jobs=(seen(59),))
    executor.run_due()
    assert backend.writes("state")[0][:3] == ("state", "node2", "drain")
    assert ("requeue", 59) in backend.calls


# --- hangs ---
def test_a_hung_job_is_signalled_then_requeued_and_is_not_a_node_failure(
    api: TestClient,
    watch: JobWatch,
    executor: Executor,
    backend: FakeBackend,
    clock: FakeClock,
    webhook: Webhook,
) -> None:
    backend.add_job(60, "node2")
    send(api, "node2", jobs=(seen(60, progress_at=T0),))
    clock.advance(500)
    send(api, "node2", jobs=(seen(60, progress_at=T0),))  # the agent reports: no progress
    watch.run_once()
    assert not backend.writes("signal")  # 500 s without progress: not yet
    clock.advance(200)
    send(api, "node2", jobs=(seen(60, progress_at=T0),))
    watch.run_once()
    executor.run_due()
    assert backend.writes("signal") == [("signal", 60, "USR1")]
    assert ("requeue", 60) not in backend.calls  # the grace period first
    assert job_view(api, 60)["status"] == "hung"
    clock.advance(61)
    executor.run_due()
    assert ("requeue", 60) in backend.calls
    hang = api.get("/v1/incidents", params={"status": "all"}).json()[0]
    assert hang["category"] == "job_hang" and hang["job_id"] == 60 and not hang["hardware"]
    assert api.get("/v1/stats/mttf").json()["total"]["failures"] == 0
    nodes = {n["name"]: n for n in api.get("/v1/nodes").json()}
    assert nodes["node2"]["open_incident"] is None  # the node is not at fault
    assert ("job_hung", 60) in webhook.kinds()
    backend.start_job(60, "node1", clock.advance(5))
    watch.run_once()
    assert api.get(f"/v1/incidents/{hang['id']}").json()["status"] == "resolved"
    resumed = job_view(api, 60)["interruptions"][0]
    assert resumed["resumed_node"] == "node1" and resumed["cause"].startswith("job 60 made no")


def test_a_silent_agent_is_no_evidence_of_a_hang(
    api: TestClient, watch: JobWatch, backend: FakeBackend, clock: FakeClock
) -> None:
    backend.add_job(66, "node2")
    send(api, "node2", jobs=(seen(66, progress_at=T0),))
    clock.advance(3600)  # node2's agent has said nothing for an hour
    watch.run_once()
    assert backend.writes("signal") == []
    assert job_view(api, 66)["status"] == "running"


def test_a_job_showing_progress_is_not_hung(
    api: TestClient, watch: JobWatch, backend: FakeBackend, clock: FakeClock
) -> None:
    backend.add_job(61, "node2")
    for _ in range(4):
        now = clock.advance(300)
        send(api, "node2", jobs=(seen(61, progress_at=now),))
        watch.run_once()
    assert backend.writes("signal") == []


# --- idle GPUs ---
def test_idle_gpus_are_listed_then_acted_on(
    api: TestClient,
    watch: JobWatch,
    executor: Executor,
    backend: FakeBackend,
    clock: FakeClock,
    webhook: Webhook,
) -> None:
    backend.add_job(62, "node2")
    backend.add_job(63, "node3")
    send(api, "node2", jobs=(seen(62, util=1.0),))
    send(api, "node3", jobs=(seen(63, util=75.0),))
    clock.advance(600)
    send(api, "node2", jobs=(seen(62, util=0.0, progress_at=clock.now),))
    assert api.get("/v1/jobs", params={"idle": "true"}).json() == []  # not for the window yet
    clock.advance(301)
    send(api, "node2", jobs=(seen(62, util=2.0, progress_at=clock.now),))
    send(api, "node3", jobs=(seen(63, util=80.0, progress_at=clock.now),))
    idle = api.get("/v1/jobs", params={"idle": "true"}).json()
    assert [j["job_id"] for j in idle] == [62]
    watch.run_once()
    executor.run_due()
    assert backend.writes("cancel") == [("cancel", 62)]
    assert webhook.kinds() == [("job_cancelled_idle", 62)]


def test_a_busy_moment_ends_the_idle_stretch(api: TestClient, clock: FakeClock) -> None:
    send(api, "node2", jobs=(seen(64, util=0.0),))
    clock.advance(800)
    send(api, "node2", jobs=(seen(64, util=60.0),))
    clock.advance(200)
    send(api, "node2", jobs=(seen(64, util=0.0),))
    assert api.get("/v1/jobs", params={"idle": "true"}).json() == []
    assert job_view(api, 64)["idle_since"] is not None


def test_a_finished_job_ends_in_the_ledger_and_its_hang_incident_closes(
    api: TestClient, watch: JobWatch, backend: FakeBackend, clock: FakeClock
) -> None:
    backend.add_job(67, "node2")
    send(api, "node2", jobs=(seen(67, progress_at=T0),))
    clock.advance(700)
    send(api, "node2", jobs=(seen(67, progress_at=T0),))
    watch.run_once()  # hung: a job incident opens
    (hang,) = api.get("/v1/incidents", params={"status": "open"}).json()
    backend.jobs_by_id[67] = replace(backend.jobs_by_id[67], state="COMPLETED")
    watch.run_once()
    assert api.get(f"/v1/incidents/{hang['id']}").json()["status"] == "resolved"
    assert api.get("/v1/jobs").json() == []  # only jobs still active are listed by default
    ended = job_view(api, 67)
    assert ended["status"] == "ended" and ended["state"] == "COMPLETED"
    assert [j["job_id"] for j in api.get("/v1/jobs", params={"all": "true"}).json()] == [67]
