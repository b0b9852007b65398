"""A fake Slurm backend (the :class:`Backend` protocol) that behaves like slurmctld
for what hpresil does: drains set the flag and reason, resumes clear them, requeues
turn a job PENDING. Wrapped in the real :class:`Slurm` facade by the tests."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hpresil.adapters.slurm.model import SlurmJob, SlurmNode
from hpresil.errors import SlurmError
from hpresil.vocab import Action, Category, CheckResult, GpuIdentity, Report, Status

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
TOKEN = "t" * 32


class FakeBackend:
    def __init__(self, *names: str) -> None:
        self.nodes_by_name = {n: SlurmNode(name=n, states=frozenset({"IDLE"})) for n in names}
        self.jobs_by_id: dict[int, SlurmJob] = {}
        self.calls: list[tuple[object, ...]] = []
        self.fail_next = 0  # how many calls raise SlurmError before Slurm "recovers"
        self._lock = threading.Lock()

    # --- test set-up ---
    def add_job(
        self,
        job_id: int,
        node: str,
        *,
        state: str = "RUNNING",
        requeue: bool = True,
        submit: datetime = T0,
        name: str = "train",
    ) -> SlurmJob:
        job = SlurmJob(
            job_id=job_id,
            name=name,
            user="alice",
            state=state,
            nodes=(node,),
            requeue=requeue,
            restart_count=0,
            submit_time=submit,
            start_time=submit,
            batch_host=node,
        )
        self.jobs_by_id[job_id] = job
        return job

    def set_node(self, name: str, *states: str, reason: str | None = None) -> None:
        self.nodes_by_name[name] = SlurmNode(name=name, states=frozenset(states), reason=reason)

    def start_job(self, job_id: int, node: str, at: datetime) -> None:
        """Slurm starts a requeued job again (new submit time, restart count + 1)."""
        job = self.jobs_by_id[job_id]
        self.jobs_by_id[job_id] = replace(
            job, state="RUNNING", nodes=(node,), batch_host=node, start_time=at
        )

    def writes(self, kind: str) -> list[tuple[object, ...]]:
        return [c for c in self.calls if c[0] == kind]

    # --- Backend protocol ---
    def nodes(self) -> list[SlurmNode]:
        self._maybe_fail("sinfo")
        return list(self.nodes_by_name.values())

    def node(self, name: str) -> SlurmNode | None:
        self._maybe_fail("scontrol")
        return self.nodes_by_name.get(name)

    def jobs(self) -> list[SlurmJob]:
        self._maybe_fail("squeue")
        return list(self.jobs_by_id.values())

    def set_node_state(self, node: str, state: str, reason: str | None = None) -> None:
        self._maybe_fail("scontrol")
        self.calls.append(("state", node, state, reason))
        old = self.nodes_by_name[node]
        base = {s for s in old.states if s != "DRAIN"}
        if state == "drain":
            self.nodes_by_name[node] = replace(
                old, states=frozenset(base | {"DRAIN"}), reason=reason
            )
        elif state == "resume":
            self.nodes_by_name[node] = replace(old, states=frozenset(base - {"DOWN"}), reason=None)

    def reboot(self, node: str, reason: str) -> None:
        """``scontrol reboot ASAP nextstate=DOWN reason=...``: requested, the node
        drained; :meth:`booted` is the RebootProgram having done it."""
        self._maybe_fail("scontrol")
        self.calls.append(("reboot", node, reason))
        old = self.nodes_by_name[node]
        states = old.states | {"DRAIN", "REBOOT_REQUESTED"}
        self.nodes_by_name[node] = replace(old, states=states, reason=reason)

    def booted(self, node: str, at: datetime) -> None:
        """The node came back from its reboot as slurmctld leaves it: DOWN, the reason
        with Slurm's suffixes, a new boot time."""
        old = self.nodes_by_name[node]
        reason = f"{old.reason} : reboot issued : reboot complete"
        self.nodes_by_name[node] = replace(
            old, states=frozenset({"DOWN"}), reason=reason, boot_time=at
        )

    def requeue(self, job_id: int) -> None:
        self._maybe_fail("scontrol")
        self.calls.append(("requeue", job_id))
        job = self.jobs_by_id[job_id]
        self.jobs_by_id[job_id] = replace(
            job,
            state="PENDING",
            nodes=(),
            batch_host=None,
            start_time=None,
            restart_count=job.restart_count + 1,
            submit_time=job.submit_time + timedelta(hours=1),  # Slurm resets it on requeue
        )

    def update_job(self, job_id: int, **fields: str) -> None:
        self._maybe_fail("scontrol")
        self.calls.append(("update", job_id, fields))
        job = self.jobs_by_id[job_id]
        if "ExcNodeList" in fields:
            excluded = tuple(fields["ExcNodeList"].split(","))
            self.jobs_by_id[job_id] = replace(job, excluded=excluded)

    def hold(self, job_id: int) -> None:
        self._maybe_fail("scontrol")
        self.calls.append(("hold", job_id))
        self.jobs_by_id[job_id] = replace(self.jobs_by_id[job_id], reason="JobHeldAdmin")

    def requeue_hold(self, job_id: int) -> None:
        self.requeue(job_id)
        self.calls[-1] = ("requeuehold", job_id)
        self.jobs_by_id[job_id] = replace(self.jobs_by_id[job_id], reason="JobHeldAdmin")

    def signal(self, job_id: int, signal: str) -> None:
        self._maybe_fail("scancel")
        self.calls.append(("signal", job_id, signal))

    def cancel(self, job_id: int) -> None:
        self._maybe_fail("scancel")
        self.calls.append(("cancel", job_id))
        self.jobs_by_id[job_id] = replace(self.jobs_by_id[job_id], state="CANCELLED")

    def _maybe_fail(self, command: str) -> None:
        with self._lock:
            if self.fail_next <= 0:
                return
            self.fail_next -= 1
        raise SlurmError([command], 1, stderr="slurm_load_node error: Socket timed out")


# --- builders ---
class FakeClock:
    """The injected clock: stands still until moved."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def gpu(index: int = 3) -> GpuIdentity:
    return GpuIdentity(
        index=index,
        uuid=f"GPU-0000000{index}-aaaa-bbbb-cccc-000000000000",
        serial=f"165000000{index}",
        pci_bus_id=f"0000:{index + 0x17:02x}:00",
        name="NVIDIA H100 80GB HBM3",
    )


def xid79(index: int = 3, at: datetime = T0) -> CheckResult:
    return CheckResult(
        check="xid",
        status=Status.FAIL,
        action=Action.REBOOT,
        category=Category.GPU_LOST_PCIE,
        summary=f"XID 79 GPU has fallen off the bus on GPU {index} (0000:5d:00)",
        gpu=gpu(index),
        xid=79,
        observed_at=at,
    )


def result(
    status: Status = Status.OK,
    action: Action = Action.NONE,
    category: Category | None = None,
    *,
    check: str = "ecc",
    index: int | None = 0,
    at: datetime = T0,
    xid: int | None = None,
) -> CheckResult:
    return CheckResult(
        check=check,
        status=status,
        action=action,
        category=category,
        summary=f"{check} {status.value}",
        gpu=gpu(index) if index is not None else None,
        xid=xid,
        observed_at=at,
    )


_ids = iter(range(1, 1_000_000))


def report(node: str, *results: CheckResult, report_id: str | None = None, seq: int = 0) -> Report:
    return Report(
        report_id=report_id or f"r-{node}-{next(_ids):08d}",
        node=node,
        seq=seq,
        sent_at=T0,
        agent_version="test",
        gpus=tuple(gpu(i) for i in range(8)),
        results=results,
    )
