"""The rules the Slurm facade keeps, over a recording fake backend (an adapter swap)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hpresil.adapters.slurm import Slurm
from hpresil.adapters.slurm.model import SlurmJob, SlurmNode
from hpresil.errors import SlurmError
from hpresil.vocab.actions import (
    DrainOutcome,
    HoldOutcome,
    RebootOutcome,
    RequeueOutcome,
    ResumeOutcome,
)

T0 = datetime(2026, 11, 22, tzinfo=UTC)


class RecordingBackend:
    def __init__(self, nodes: list[SlurmNode], jobs: list[SlurmJob], fail_first: int = 0) -> None:
        self._nodes = {n.name: n for n in nodes}
        self._jobs = {j.job_id: j for j in jobs}
        self.calls: list[tuple[object, ...]] = []
        self.fail_left = fail_first

    def _maybe_fail(self) -> None:
        if self.fail_left:
            self.fail_left -= 1
            raise SlurmError(["scontrol"], 1, stderr="slurm_load_node error: Socket timed out")

    def nodes(self) -> list[SlurmNode]:
        self._maybe_fail()
        return list(self._nodes.values())

    def node(self, name: str) -> SlurmNode | None:
        self._maybe_fail()
        return self._nodes.get(name)

    def jobs(self) -> list[SlurmJob]:
        return list(self._jobs.values())

    def set_node_state(self, node: str, state: str, reason: str | None = None) -> None:
        self.calls.append(("state", node, state, reason))

    def reboot(self, node: str, reason: str) -> None:
        self.calls.append(("reboot", node, reason))

    def requeue(self, job_id: int) -> None:
        self.calls.append(("requeue", job_id))

    def update_job(self, job_id: int, **fields: str) -> None:
        self.calls.append(("update", job_id, fields))

    def hold(self, job_id: int) -> None:
        self.calls.append(("hold", job_id))

    def requeue_hold(self, job_id: int) -> None:
        self.calls.append(("requeuehold", job_id))

    def signal(self, job_id: int, signal: str) -> None:
        self.calls.append(("signal", job_id, signal))

    def cancel(self, job_id: int) -> None:
        self.calls.append(("cancel", job_id))


def node(name: str, *states: str, reason: str | None = None) -> SlurmNode:
    return SlurmNode(name=name, states=frozenset(states), reason=reason)


def job(
    job_id: int,
    state: str = "RUNNING",
    requeue: bool = True,
    *,
    excluded: tuple[str, ...] = (),
    reason: str = "",
) -> SlurmJob:
    return SlurmJob(
        job_id, "train", "alice", state, ("n1",), requeue, 0, T0, excluded=excluded, reason=reason
    )


def slurm(*nodes: SlurmNode, jobs: tuple[SlurmJob, ...] = (), fail_first: int = 0) -> Slurm:
    return Slurm(RecordingBackend(list(nodes), list(jobs), fail_first), backoff_s=0)


def calls(s: Slurm) -> list[tuple[object, ...]]:
    return s.backend.calls  # type: ignore[attr-defined,no-any-return]


def test_drain_prefixes_the_reason() -> None:
    s = slurm(node("n1", "MIXED"))
    assert s.drain("n1", "#3 gpu_lost_pcie xid 79") is DrainOutcome.DRAINED
    assert calls(s) == [("state", "n1", "drain", "hpresil: #3 gpu_lost_pcie xid 79")]


def test_drain_never_overwrites_a_foreign_reason() -> None:
    s = slurm(node("n1", "IDLE", "DRAIN", reason="admin: fan"))
    assert s.drain("n1", "xid 79") is DrainOutcome.FOREIGN
    assert calls(s) == []


def test_drain_of_our_own_drain_is_a_no_op() -> None:
    s = slurm(node("n1", "IDLE", "DRAIN", reason="hpresil: #1 xid 79"))
    assert s.drain("n1", "xid 79") is DrainOutcome.ALREADY_OURS
    assert calls(s) == []


def test_resume_only_nodes_hpresil_drained() -> None:
    s = slurm(
        node("ours", "IDLE", "DRAIN", reason="hpresil: #1"),
        node("theirs", "IDLE", "DRAIN", reason="admin: fan"),
        node("fine", "IDLE"),
    )
    assert s.resume("theirs") is ResumeOutcome.NOT_OURS
    assert s.resume("fine") is ResumeOutcome.NOT_DRAINED
    assert s.resume("ours") is ResumeOutcome.RESUMED
    assert calls(s) == [("state", "ours", "resume", None)]


@pytest.mark.parametrize(
    ("the_job", "outcome"),
    [
        (job(1), RequeueOutcome.REQUEUED),
        (job(1, state="COMPLETED"), RequeueOutcome.NOT_RUNNING),
        (job(1, requeue=False), RequeueOutcome.NOT_REQUEUEABLE),
    ],
)
def test_requeue_only_running_requeueable_jobs(the_job: SlurmJob, outcome: RequeueOutcome) -> None:
    s = slurm(jobs=(the_job,))
    assert s.requeue(1) is outcome
    assert (("requeue", 1) in calls(s)) is (outcome is RequeueOutcome.REQUEUED)


def test_requeue_of_unknown_job_is_gone() -> None:
    assert slurm().requeue(42) is RequeueOutcome.GONE


def test_expedite_waits_for_pending_and_skips_others() -> None:
    s = slurm(jobs=(job(1, state="PENDING"), job(2, state="RUNNING")))
    assert s.expedite([1, 2], wait_s=1) == {1}
    assert calls(s) == [("update", 1, {"StartTime": "now"})]


def test_expedite_keeps_the_job_off_failed_nodes_as_well_as_its_own() -> None:
    s = slurm(jobs=(job(1, state="PENDING", excluded=("n7",)),))
    assert s.expedite([1], exclude={1: ["n1", "n3"]}, start_now=False, wait_s=1) == {1}
    assert calls(s) == [("update", 1, {"ExcNodeList": "n1,n3,n7"})]


def test_expedite_sends_nothing_when_the_nodes_are_already_excluded() -> None:
    s = slurm(jobs=(job(1, state="PENDING", excluded=("n1",)),))
    assert s.expedite([1], exclude={1: ["n1"]}, start_now=False, wait_s=1) == set()
    assert calls(s) == []


def test_requeue_held_uses_requeuehold() -> None:
    s = slurm(jobs=(job(1),))
    assert s.requeue(1, hold=True) is RequeueOutcome.HELD
    assert calls(s) == [("requeuehold", 1)]


@pytest.mark.parametrize(
    ("the_job", "outcome", "call"),
    [
        (job(1, state="PENDING"), HoldOutcome.HELD, ("hold", 1)),
        (job(1), HoldOutcome.REQUEUE_HELD, ("requeuehold", 1)),
        (job(1, state="PENDING", reason="JobHeldAdmin"), HoldOutcome.ALREADY_HELD, None),
        (job(1, state="COMPLETED"), HoldOutcome.FINISHED, None),
    ],
)
def test_hold_fits_the_job_state(
    the_job: SlurmJob, outcome: HoldOutcome, call: tuple[object, ...] | None
) -> None:
    s = slurm(jobs=(the_job,))
    assert s.hold(1) is outcome
    assert calls(s) == ([call] if call else [])


def test_signal_only_reaches_running_jobs() -> None:
    s = slurm(jobs=(job(1), job(2, state="PENDING")))
    assert s.signal(1, "USR1") and not s.signal(2, "USR1")
    assert calls(s) == [("signal", 1, "USR1")]


def test_transient_failures_are_retried() -> None:
    s = slurm(node("n1", "IDLE"), fail_first=2)
    assert [n.name for n in s.nodes()] == ["n1"]


def test_persistent_failure_raises_typed_error_with_stderr() -> None:
    s = slurm(node("n1", "IDLE"), fail_first=10)
    with pytest.raises(SlurmError, match="Socket timed out") as info:
        s.nodes()
    assert info.value.returncode == 1 and info.value.argv == ["scontrol"]


def test_reboot_only_a_node_hpresil_drained_and_not_twice() -> None:
    ours = node("n1", "IDLE", "DRAIN", reason="hpresil: #4 gpu_lost_pcie xid 79 gpu 2")
    s = slurm(
        ours,
        node("n2", "IDLE", "DRAIN", reason="bob: riser"),
        node("n3", "IDLE"),
        node("n4", "DOWN", "DRAIN", "REBOOT_ISSUED", reason="hpresil: #5 x : reboot issued"),
    )
    assert s.reboot("n1", "hpresil: #4 gpu_lost_pcie xid 79 gpu 2") is RebootOutcome.REQUESTED
    assert s.reboot("n2", "hpresil: #6 x") is RebootOutcome.NOT_OURS  # someone else's drain
    assert s.reboot("n3", "hpresil: #7 x") is RebootOutcome.NOT_OURS  # not drained at all
    assert s.reboot("n4", "hpresil: #5 x") is RebootOutcome.PENDING  # under way already
    backend = s.backend
    assert isinstance(backend, RecordingBackend)
    assert backend.calls == [("reboot", "n1", "hpresil: #4 gpu_lost_pcie xid 79 gpu 2")]


def test_mark_gives_only_a_node_hpresil_holds_a_new_reason() -> None:
    s = slurm(
        node("n1", "IDLE", "DRAIN", reason="hpresil: #4 gpu_lost_pcie xid 79 gpu 2"),
        node("n2", "DOWN", reason="hpresil: #5 x : reboot issued : reboot complete"),
        node("n3", "IDLE", "DRAIN", reason="bob: riser"),
        node("n4", "IDLE"),
    )
    assert s.mark("n1", "hpresil: #4 replace gpu_lost_pcie xid 79 gpu 2")
    assert s.mark("n2", "#5 replace x")  # DOWN after a reboot: still hpresil's
    assert not s.mark("n3", "hpresil: #6 replace x")  # someone else's drain
    assert not s.mark("n4", "hpresil: #7 replace x")  # in service
    backend = s.backend
    assert isinstance(backend, RecordingBackend)
    assert backend.calls == [
        ("state", "n1", "drain", "hpresil: #4 replace gpu_lost_pcie xid 79 gpu 2"),
        ("state", "n2", "drain", "hpresil: #5 replace x"),
    ]
