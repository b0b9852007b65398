"""From a fault report to Slurm: drain first, then requeue the jobs, with retries."""

from __future__ import annotations

import time
from typing import Any, get_args

from fastapi.testclient import TestClient

from hpresil.adapters.slurm import Slurm
from hpresil.config import Config, PolicyConfig
from hpresil.controller.app import create_app
from hpresil.controller.remediation import _HANDLERS, Backoff, Executor
from hpresil.store import Store, repo
from hpresil.store.models import ActionRow
from hpresil.vocab import Action, Category, Status
from hpresil.vocab.actions import ActionKind, ActionStatus
from tests.unit.controller.fakes import TOKEN, FakeBackend, FakeClock, report, result, xid79


def post(client: TestClient, *args: Any) -> dict[str, Any]:
    answer = client.post("/v1/reports", json=report(*args).model_dump(mode="json"))
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def incident(client: TestClient, number: int = 1) -> dict[str, Any]:
    return client.get(f"/v1/incidents/{number}").json()  # type: ignore[no-any-return]


def test_xid79_drains_the_node_then_requeues_its_running_jobs(
    client: TestClient, executor: Executor, backend: FakeBackend
) -> None:
    backend.add_job(11, "node2")
    backend.add_job(12, "node2", state="COMPLETED")  # requeueing it would re-run it
    backend.add_job(13, "node2", requeue=False)
    backend.add_job(14, "node1")
    assert post(client, "node2", xid79())["incidents"] == [1]

    assert executor.run_due() == 3  # the drain, then one requeue per running job

    drain, *requeues = [c for c in backend.calls if c[0] in ("state", "requeue")]
    assert drain == ("state", "node2", "drain", "hpresil: #1 gpu_lost_pcie xid 79 gpu 3")
    assert requeues == [("requeue", 11)]
    found = incident(client)
    assert found["status"] == "open" and found["category"] == "gpu_lost_pcie"
    assert found["xid"] == 79 and found["gpu"]["index"] == 3 and found["hardware"] is True
    assert found["drained_at"] is not None
    jobs = {j["job_id"]: j for j in found["jobs"]}
    assert set(jobs) == {11, 13}
    assert jobs[11]["requeue_outcome"] == "requeued" and jobs[11]["requeued_at"]
    assert jobs[13]["requeue_outcome"] == "not_requeueable" and jobs[13]["requeued_at"] is None
    kinds = [(a["kind"], a["target"], a["status"], a["outcome"]) for a in found["actions"]]
    assert kinds == [
        ("drain", "node2", "done", "drained"),
        ("requeue", "11", "done", "requeued"),
        ("requeue", "13", "skipped", "not_requeueable"),
    ]
    why = found["actions"][0]["why"]
    assert why == (
        "XID 79 GPU has fallen off the bus on GPU 3 (0000:5d:00); "
        "policy: reboot ⇒ drain now and requeue jobs"
    )
    assert all(a["why"] for a in found["actions"])


def test_a_foreign_drain_is_kept_but_the_jobs_are_still_requeued(
    client: TestClient, executor: Executor, backend: FakeBackend
) -> None:
    backend.set_node("node3", "MIXED", "DRAIN", reason="admin: PSU swap")
    backend.add_job(21, "node3")
    post(client, "node3", xid79(index=0))
    executor.run_due()
    assert backend.nodes_by_name["node3"].reason == "admin: PSU swap"
    assert backend.writes("state") == []
    assert backend.writes("requeue") == [("requeue", 21)]
    found = incident(client)
    drain = found["actions"][0]
    assert (drain["kind"], drain["status"], drain["outcome"]) == ("drain", "skipped", "foreign")
    assert found["drained_at"] is None


def test_drain_without_requeue_lets_jobs_finish(
    client: TestClient, executor: Executor, backend: FakeBackend
) -> None:
    backend.add_job(31, "node1")
    post(client, "node1", result(Status.FAIL, Action.DRAIN, Category.HBM_ECC, xid=48))
    executor.run_due()
    assert backend.writes("state")[0][3] == "hpresil: #1 hbm_ecc xid 48 gpu 0"
    assert backend.writes("requeue") == []
    assert incident(client)["actions"][0]["why"].endswith("drain; running jobs may finish")


def test_later_faults_attach_and_escalation_requeues(
    client: TestClient, executor: Executor, backend: FakeBackend
) -> None:
    backend.add_job(41, "node1")
    post(client, "node1", result(Status.FAIL, Action.DRAIN, Category.HBM_ECC, xid=48))
    executor.run_due()
    post(client, "node1", result(Status.FAIL, Action.DRAIN, Category.HBM_ECC, xid=48))
    assert executor.run_due() == 0  # already drained for this incident: nothing new
    assert post(client, "node1", xid79())["incidents"] == [1]
    executor.run_due()
    found = incident(client)
    assert found["findings"] == 3 and found["action"] == "reboot"
    assert found["category"] == "hbm_ecc" and found["xid"] == 48  # the first fault's identity
    assert [(a["kind"], a["outcome"]) for a in found["actions"]] == [
        ("drain", "drained"),
        ("drain", "already_ours"),
        ("requeue", "requeued"),
    ]
    assert len(client.get("/v1/incidents").json()) == 1


def test_application_faults_never_drain(
    client: TestClient, executor: Executor, backend: FakeBackend
) -> None:
    post(client, "node1", result(Status.FAIL, Action.DRAIN_NOW, Category.APP, check="app"))
    assert executor.run_due() == 0
    found = incident(client)
    assert found["category"] == "app" and found["hardware"] is False and found["actions"] == []
    assert backend.calls == []


def test_slurm_failing_twice_is_retried_with_backoff(
    client: TestClient, executor: Executor, backend: FakeBackend, clock: FakeClock
) -> None:
    post(client, "node1", xid79())
    backend.fail_next = 2
    assert executor.run_due() == 1
    first = incident(client)["actions"][0]
    assert (first["status"], first["attempts"]) == ("pending", 1)
    assert "Socket timed out" in first["error"]
    assert executor.run_due() == 0  # backing off
    assert executor.seconds_to_next() == 0.5
    clock.advance(0.5)
    executor.run_due()
    assert incident(client)["actions"][0]["attempts"] == 2
    assert client.get("/v1/nodes").status_code == 200  # the API keeps answering
    clock.advance(1.0)
    executor.run_due()
    done = incident(client)["actions"][0]
    assert (done["status"], done["attempts"], done["outcome"]) == ("done", 3, "drained")
    assert done["error"] is None


def test_retries_end_in_failed_with_the_error(
    store: Store, slurm: Slurm, cfg: Config, client: TestClient, backend: FakeBackend
) -> None:
    clock = FakeClock()
    executor = Executor(store, slurm, cfg.policy, clock=clock, backoff=Backoff(max_attempts=3))
    backend.fail_next = 100
    post(client, "node1", xid79())
    for _ in range(5):
        executor.run_due()
        clock.advance(60)
    failed = incident(client)["actions"][0]
    assert (failed["status"], failed["attempts"]) == ("failed", 3)
    assert "Socket timed out" in failed["error"]
    assert Backoff().delay(1) == 0.5 and Backoff().delay(4) == 4 and Backoff().delay(20) == 30


def test_a_node_unknown_to_slurm_fails_at_once(
    client: TestClient, executor: Executor, backend: FakeBackend
) -> None:
    backend.set_node("ghost", "IDLE")
    post(client, "ghost", xid79())
    del backend.nodes_by_name["ghost"]  # gone from Slurm before the drain runs
    executor.run_due()
    failed = incident(client)["actions"][0]
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    assert "no node named 'ghost'" in failed["error"]


def test_every_action_kind_but_resume_has_a_handler() -> None:
    assert set(_HANDLERS) == set(get_args(ActionKind)) - {"resume"}


def test_a_queued_resume_is_not_executed(
    store: Store, executor: Executor, backend: FakeBackend, clock: FakeClock
) -> None:
    # a resume is run by the operator at once and recorded done; one found pending
    # (never queued by hpresil) fails without touching Slurm
    with store.write() as s:
        repo.ensure_node(s, "node2", clock())
        queued = repo.add_action(s, kind="resume", target="node2", why="?", now=clock())
        s.flush()
        number = queued.id
    assert executor.run_due() == 1
    assert backend.calls == []
    with store.read() as s:
        row = s.get(ActionRow, number)
        assert row is not None
        assert (row.status, row.attempts) == (ActionStatus.FAILED, 1)
        assert row.error == "the executor does not run 'resume' actions"


def test_pending_actions_survive_a_restart(
    cfg: Config, slurm: Slurm, backend: FakeBackend, clock: FakeClock
) -> None:
    store = Store.open(cfg.controller.database)
    store.migrate()
    app = create_app(store=store, slurm=slurm, config=cfg, token=TOKEN, clock=clock)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        post(client, "node2", xid79())  # nobody runs the action: the controller "dies"
    store.close()

    reopened = Store.open(cfg.controller.database)
    reopened.migrate()
    Executor(reopened, slurm, cfg.policy, clock=clock).run_due()
    assert backend.writes("state")[0][:3] == ("state", "node2", "drain")
    reopened.close()


def test_fault_to_drained_under_two_seconds_with_the_thread(
    store: Store, backend: FakeBackend, cfg: Config
) -> None:
    """The real thread and clock, Slurm failing twice: still drained well in time,
    and the API answers meanwhile."""
    policy = PolicyConfig(expedite_requeue=True)
    slurm = Slurm(backend, retries=0)
    executor = Executor(store, slurm, policy, backoff=Backoff(base_s=0.05))
    app = create_app(
        store=store,
        slurm=slurm,
        config=cfg.model_copy(update={"policy": policy}),
        token=TOKEN,
        wake=executor.wake,
    )
    backend.add_job(51, "node2")
    backend.fail_next = 2
    executor.start()
    try:
        with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            started = time.monotonic()
            post(client, "node2", xid79())
            while "DRAIN" not in backend.nodes_by_name["node2"].states:
                assert time.monotonic() - started < 2.0, "not drained within 2 s"
                assert client.get("/healthz").status_code == 200
                time.sleep(0.01)
            while not any(  # expedited from the side thread, and kept off the bad node
                c == ("update", 51, {"ExcNodeList": "node2", "StartTime": "now"})
                for c in backend.calls
            ):
                assert time.monotonic() - started < 5.0, "requeued job never expedited"
                time.sleep(0.01)
    finally:
        executor.stop()
    assert not executor.alive
