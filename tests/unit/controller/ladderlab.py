"""One pass of the controller's leader, piece by piece over the fake Slurm backend, for
the recovery ladder's tests: the fixtures ``ladder`` and ``lab`` (in conftest)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from hpresil.adapters.slurm import Slurm
from hpresil.config.recovery import RecoveryConfig
from hpresil.controller.reconcile import Reconciler
from hpresil.controller.recovery import Ladder
from hpresil.controller.remediation import Executor
from hpresil.store import Store
from tests.unit.controller.fakes import FakeBackend, FakeClock, report, xid79


def make_ladder(store: Store, slurm: Slurm, clock: FakeClock, executor: Executor) -> Ladder:
    cfg = RecoveryConfig(enabled=True, reboot_timeout_s=600)
    return Ladder(store, slurm, cfg, clock, wake=executor.wake)


class Lab:
    """The pieces one pass of the leader runs, in its order."""

    def __init__(
        self,
        client: TestClient,
        executor: Executor,
        reconciler: Reconciler,
        ladder: Ladder,
        backend: FakeBackend,
    ) -> None:
        self.client, self.executor, self.reconciler = client, executor, reconciler
        self.ladder, self.backend = ladder, backend

    def fault(self, node: str, *results: Any) -> int:
        body = report(node, *(results or (xid79(),))).model_dump(mode="json")
        ack = self.client.post("/v1/reports", json=body).json()
        self.executor.run_due()
        self.reconciler.run_once()
        return int(ack["incidents"][0])

    def tick(self) -> None:
        jobs = self.backend.jobs()
        self.reconciler.run_once(jobs)
        self.ladder.run_once(jobs)
        self.executor.run_due()

    def rebooting(self, node: str) -> int:
        """An XID 79 on ``node``, drained, and a pass in which the ladder may start its
        reboot: the incident."""
        incident = self.fault(node)
        self.tick()
        return incident

    def step_after_tick(self, incident: int) -> dict[str, Any]:
        """The incident's one step after the next pass."""
        self.tick()
        [step] = self.recovery(incident)
        return step

    def recovery(self, incident: int) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = self.client.get(f"/v1/incidents/{incident}").json()[
            "recovery"
        ]
        return steps
