"""A Slurm outage under the controller, answered as the real 22.05 clients answer while
slurmctld is stopped (recorded outputs replayed through the CLI backend): a drain waits
and is done once Slurm is back, then the node's jobs are requeued, each thing once."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hpresil.adapters.slurm import Slurm
from hpresil.adapters.slurm.cli import CliBackend
from hpresil.adapters.slurm.model import SlurmJob, SlurmNode
from hpresil.config import Config
from hpresil.controller.app import create_app
from hpresil.controller.reconcile import MAX_ROUNDS, Reconciler
from hpresil.controller.remediation import Backoff, Executor
from hpresil.errors import SlurmError
from hpresil.store import Store
from tests.unit.controller.conftest import NODES
from tests.unit.controller.fakes import TOKEN, FakeBackend, FakeClock, report, xid79
from tests.unit.slurm.replay import replay_bin


class OutageBackend(FakeBackend):
    """The fake cluster while ``down`` is False; while True, every call goes to the
    CLI backend over the commands recorded with slurmctld stopped."""

    def __init__(self, bin_dir: Path, *names: str) -> None:
        super().__init__(*names)
        self.down = False
        self._cli = CliBackend(bin_dir=bin_dir, timeout=10)

    def nodes(self) -> list[SlurmNode]:
        return self._cli.nodes() if self.down else super().nodes()

    def node(self, name: str) -> SlurmNode | None:
        return self._cli.node(name) if self.down else super().node(name)

    def jobs(self) -> list[SlurmJob]:
        return self._cli.jobs() if self.down else super().jobs()

    def set_node_state(self, node: str, state: str, reason: str | None = None) -> None:
        if self.down:
            self._cli.set_node_state(node, state, reason)
        super().set_node_state(node, state, reason)

    def requeue(self, job_id: int) -> None:
        if self.down:
            self._cli.requeue(job_id)
        super().requeue(job_id)


@pytest.fixture
def backend(tmp_path: Path) -> OutageBackend:
    return OutageBackend(replay_bin(tmp_path / "bin"), *NODES)


@pytest.fixture
def patient(store: Store, backend: OutageBackend, cfg: Config, clock: FakeClock) -> Executor:
    """An executor that gives up after two attempts."""
    slurm = Slurm(backend, retries=0, backoff_s=0)
    return Executor(store, slurm, cfg.policy, clock=clock, backoff=Backoff(max_attempts=2))


def post(client: TestClient, node: str) -> None:
    answer = client.post("/v1/reports", json=report(node, xid79()).model_dump(mode="json"))
    assert answer.status_code == 200, answer.text


def actions(client: TestClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get("/v1/incidents/1").json()["actions"]
    return found


def test_a_drain_while_slurmctld_is_down_waits_and_is_done_when_it_returns(
    client: TestClient,
    executor: Executor,
    reconciler: Reconciler,
    backend: OutageBackend,
    clock: FakeClock,
) -> None:
    backend.add_job(11, "node2")
    fault_during_an_outage(client, executor, reconciler, backend, clock, tries=3)
    (drain,) = actions(client)
    assert (drain["kind"], drain["status"], drain["attempts"]) == ("drain", "pending", 3)
    assert "Unable to contact slurm controller" in drain["error"]  # reading node2 alone

    backend.down = False
    executor.run_due()
    assert backend.writes("state") == [
        ("state", "node2", "drain", "hpresil: #1 gpu_lost_pcie xid 79 gpu 3")
    ]
    assert backend.writes("requeue") == [("requeue", 11)]
    assert [(a["kind"], a["status"], a["outcome"]) for a in actions(client)] == [
        ("drain", "done", "drained"),
        ("requeue", "done", "requeued"),
    ]


def test_a_drain_given_up_is_queued_again_by_reconcile_once_slurm_answers(
    client: TestClient,
    patient: Executor,
    reconciler: Reconciler,
    backend: OutageBackend,
    clock: FakeClock,
) -> None:
    backend.add_job(11, "node2")
    fault_during_an_outage(client, patient, reconciler, backend, clock, tries=3)
    (failed,) = actions(client)
    assert (failed["status"], failed["attempts"], failed["outcome"]) == (
        "failed",
        2,
        "retries_exhausted",
    )
    reconciler.run_once()  # slurm still down: nothing queued
    assert len(actions(client)) == 1

    backend.down = False
    reconciler.run_once()
    reconciler.run_once()  # once, not once per pass
    first, again = actions(client)
    assert (first["status"], first["outcome"]) == ("failed", f"retried as #{again['id']}")
    assert (again["kind"], again["status"], again["why"]) == ("drain", "pending", first["why"])
    patient.run_due()
    assert len(backend.writes("state")) == 1 and backend.writes("requeue") == [("requeue", 11)]
    assert [(a["kind"], a["status"]) for a in actions(client)] == [
        ("drain", "failed"),
        ("drain", "done"),
        ("requeue", "done"),
    ]


def fault_during_an_outage(
    client: TestClient,
    executor: Executor,
    reconciler: Reconciler,
    backend: OutageBackend,
    clock: FakeClock,
    *,
    tries: int,
) -> None:
    """node2's fault reported while Slurm is down, its drain tried ``tries`` times a
    minute apart (Slurm still down)."""
    reconciler.run_once()  # the nodes Slurm lists, as a running controller has them
    backend.down = True
    post(client, "node2")
    for _ in range(tries):
        executor.run_due()
        clock.advance(60)


def test_a_drain_that_reached_slurm_before_the_outage_is_not_repeated(
    client: TestClient,
    patient: Executor,
    reconciler: Reconciler,
    backend: OutageBackend,
    clock: FakeClock,
) -> None:
    fault_during_an_outage(client, patient, reconciler, backend, clock, tries=2)
    backend.down = False
    backend.set_node("node2", "IDLE", "DRAIN", reason="hpresil: #1 gpu_lost_pcie xid 79 gpu 3")
    reconciler.run_once()
    patient.run_due()
    assert backend.writes("state") == []
    assert actions(client)[-1]["outcome"] == "already_ours"


def test_an_admin_drain_made_during_the_outage_is_kept(
    client: TestClient,
    patient: Executor,
    reconciler: Reconciler,
    backend: OutageBackend,
    clock: FakeClock,
) -> None:
    fault_during_an_outage(client, patient, reconciler, backend, clock, tries=2)
    backend.down = False
    backend.set_node("node2", "IDLE", "DRAIN", reason="admin: PSU swap")
    reconciler.run_once()
    patient.run_due()
    assert backend.writes("state") == []
    assert backend.nodes_by_name["node2"].reason == "admin: PSU swap"
    assert actions(client)[-1]["outcome"] == "foreign"


def test_queued_again_a_bounded_number_of_times(
    client: TestClient,
    patient: Executor,
    reconciler: Reconciler,
    backend: OutageBackend,
    clock: FakeClock,
) -> None:
    post(client, "node2")
    backend.fail_next = 1000  # Slurm fails the executor, answers the reconcile pass
    for _ in range(4 * MAX_ROUNDS):
        patient.run_due()
        clock.advance(60)
        backend.fail_next, saved = 0, backend.fail_next
        reconciler.run_once()
        backend.fail_next = saved
    drains = [a for a in actions(client) if a["kind"] == "drain"]
    assert len(drains) == MAX_ROUNDS and all(a["status"] == "failed" for a in drains)


def test_reconcile_while_slurmctld_is_down_is_one_log_line(
    client: TestClient,
    reconciler: Reconciler,
    backend: OutageBackend,
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend.down = True
    with caplog.at_level(logging.WARNING):
        reconciler.run_once()
    (line,) = [r for r in caplog.records if r.name == "hpresil.controller.reconcile"]
    assert "answered with an error: Unspecified error" in line.getMessage()
    assert line.exc_info is None and "\n" not in line.getMessage()
    backend.down = False
    reconciler.run_once()
    assert {n["name"] for n in client.get("/v1/nodes").json()} == set(NODES)


class LostAnswerBackend(OutageBackend):
    """Slurm requeues the job but its answer is lost (the client timed out)."""

    lose_answers = 0

    def requeue(self, job_id: int) -> None:
        super().requeue(job_id)
        if self.lose_answers:
            self.lose_answers -= 1
            raise SlurmError(["scontrol", "requeue"], None, timed_out=True, timeout=10.0)


def test_a_requeue_whose_answer_was_lost_is_not_repeated_once_the_job_runs_again(
    store: Store, cfg: Config, clock: FakeClock, tmp_path: Path
) -> None:
    backend = LostAnswerBackend(replay_bin(tmp_path / "bin"), *NODES)
    slurm = Slurm(backend, retries=0, backoff_s=0)
    executor = Executor(store, slurm, cfg.policy, clock=clock)
    app = create_app(store=store, slurm=slurm, config=cfg, token=TOKEN, clock=clock)
    backend.add_job(11, "node2")
    backend.lose_answers = 1
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        post(client, "node2")
        executor.run_due()
        assert backend.writes("requeue") == [("requeue", 11)]
        backend.start_job(11, "node3", clock.advance(5))  # Slurm ran it again elsewhere
        clock.advance(60)
        executor.run_due()
        assert backend.writes("requeue") == [("requeue", 11)]  # not requeued a second time
        requeue = actions(client)[-1]
        assert (requeue["kind"], requeue["status"], requeue["outcome"]) == (
            "requeue",
            "done",
            "requeued",
        )
