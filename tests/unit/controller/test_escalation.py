"""Escalation on recurrence: a fault that comes back on the same GPU climbs NVIDIA's
ladder (reset GPU -> reboot -> replace)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from hpresil.config import PolicyConfig
from hpresil.controller.policy import decide, escalate, recurrence_key
from hpresil.controller.remediation import Executor
from hpresil.vocab import Action, Category, Status
from tests.unit.controller.fakes import FakeClock, report, result, xid79


@pytest.mark.parametrize(
    ("action", "earlier", "expected"),
    [
        (Action.REBOOT, 0, Action.REBOOT),
        (Action.REBOOT, 1, Action.REPLACE),
        (Action.RESET_GPU, 1, Action.REBOOT),
        (Action.RESET_GPU, 2, Action.REPLACE),
        (Action.RESET_GPU, 9, Action.REPLACE),
        (Action.DRAIN, 3, Action.DRAIN),  # off the ladder: unchanged
        (Action.WATCH, 3, Action.WATCH),
    ],
)
def test_ladder(action: Action, earlier: int, expected: Action) -> None:
    assert escalate(action, earlier) is expected


def test_decide_escalates_only_the_recurring_fault_and_says_why() -> None:
    fault = xid79(index=3)
    earlier = {recurrence_key("node1", fault): 1}
    d = decide([fault], None, PolicyConfig(), earlier, "node1")
    assert d.action is Action.REPLACE and d.requeue
    assert "2nd gpu_lost_pcie on this GPU: reboot -> replace" in d.why
    other = decide([xid79(index=4)], None, PolicyConfig(), earlier, "node1")
    assert other.action is Action.REBOOT


def test_escalation_can_be_turned_off() -> None:
    fault = xid79()
    cfg = PolicyConfig(escalate_on_recurrence=False)
    d = decide([fault], None, cfg, {recurrence_key("node1", fault): 3}, "node1")
    assert d.action is Action.REBOOT


def _post(client: TestClient, node: str, *results: Any) -> list[int]:
    answer = client.post("/v1/reports", json=report(node, *results).model_dump(mode="json"))
    assert answer.status_code == 200, answer.text
    return list(answer.json()["incidents"])


def test_second_gpu_loss_on_the_same_serial_suggests_replacing_it(
    client: TestClient, executor: Executor, clock: FakeClock
) -> None:
    (first,) = _post(client, "node1", xid79(index=3, at=clock()))
    executor.run_due()
    assert client.post("/v1/nodes/node1/resume").status_code == 200
    clock.advance(3600)
    (second,) = _post(client, "node1", xid79(index=3, at=clock()))
    assert second != first
    found = client.get(f"/v1/incidents/{second}").json()
    assert found["action"] == "replace"
    assert "reboot -> replace" in found["summary"]
    # Another GPU of the same node has no history: no escalation on the GPU's ladder,
    # but it is the node's third hardware fault: the lemon rule (policy.replace_after)
    executor.run_due()
    client.post("/v1/nodes/node1/resume")
    (third,) = _post(client, "node1", xid79(index=5, at=clock()))
    found = client.get(f"/v1/incidents/{third}").json()
    assert found["action"] == "replace"
    assert (
        "->" not in found["summary"]
        and "lemon: 3rd hardware fault on node node1" in found["summary"]
    )


def test_recurrence_outside_the_window_does_not_escalate(
    client: TestClient, executor: Executor, clock: FakeClock
) -> None:
    _post(client, "node2", result(Status.FAIL, Action.RESET_GPU, Category.HBM_ECC, at=clock()))
    executor.run_due()
    client.post("/v1/nodes/node2/resume")
    clock.advance(31 * 86400)  # default window: 30 days
    (later,) = _post(
        client, "node2", result(Status.FAIL, Action.RESET_GPU, Category.HBM_ECC, at=clock())
    )
    assert client.get(f"/v1/incidents/{later}").json()["action"] == "reset_gpu"
