"""What the Slurm adapter says about nodes and jobs, independent of the backend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class SlurmNode:
    name: str
    states: frozenset[str]  # upper case: base state and flags, e.g. {"MIXED", "DRAIN"}
    reason: str | None = None
    reason_set_by: str | None = None
    reason_time: datetime | None = None
    boot_time: datetime | None = None  # when the node (its slurmd, with -b) last booted

    @property
    def rebooting(self) -> bool:
        """A reboot is requested (waiting for the node to be idle) or under way."""
        return bool(self.states & {"REBOOT_REQUESTED", "REBOOT_ISSUED"})

    @property
    def drained(self) -> bool:
        """Drain flag set (DRAINING or DRAINED): the scheduler starts nothing here."""
        return "DRAIN" in self.states

    @property
    def down(self) -> bool:
        return "DOWN" in self.states

    @property
    def state_text(self) -> str:
        """Like ``scontrol``: base state, then flags joined with ``+``."""
        base = [s for s in self.states if s in _BASE_STATES]
        flags = sorted(s for s in self.states if s not in _BASE_STATES)
        return "+".join((base[:1] or ["UNKNOWN"]) + flags)


_BASE_STATES = {"IDLE", "MIXED", "ALLOCATED", "DOWN", "ERROR", "FUTURE", "UNKNOWN"}


@dataclass(frozen=True)
class SlurmJob:
    job_id: int
    name: str
    user: str
    state: str  # upper case: RUNNING, PENDING, COMPLETED, ...
    nodes: tuple[str, ...]  # expanded
    requeue: bool
    restart_count: int
    submit_time: datetime
    start_time: datetime | None = None
    batch_host: str | None = None
    comment: str = ""
    reason: str = ""
    excluded: tuple[str, ...] = ()  # ExcNodeList, expanded

    @property
    def running(self) -> bool:
        return self.state == "RUNNING"

    @property
    def head_node(self) -> str | None:
        """Where its batch script runs (else its first node); None while pending."""
        return self.batch_host or (self.nodes[0] if self.nodes else None)

    def started_since(self, when: datetime) -> bool:
        """Whether it started at or after ``when`` (Slurm keeps whole seconds)."""
        return self.start_time is not None and self.start_time >= when.replace(microsecond=0)

    @property
    def held(self) -> bool:
        """Held by an administrator or its user: Slurm will not start it."""
        return self.reason in ("JobHeldAdmin", "JobHeldUser")


class Backend(Protocol):
    """The raw operations a Slurm backend offers (CLI by default, pyslurm optional).

    Each raises :class:`hpresil.errors.SlurmError` when Slurm fails or times out."""

    def nodes(self) -> list[SlurmNode]: ...

    def node(self, name: str) -> SlurmNode | None: ...  # one node; None: Slurm has none

    def jobs(self) -> list[SlurmJob]: ...

    def set_node_state(self, node: str, state: str, reason: str | None = None) -> None: ...

    def reboot(self, node: str, reason: str) -> None: ...  # when idle; back DOWN, reason kept

    def requeue(self, job_id: int) -> None: ...

    def update_job(self, job_id: int, **fields: str) -> None: ...

    def hold(self, job_id: int) -> None: ...

    def requeue_hold(self, job_id: int) -> None: ...

    def signal(self, job_id: int, signal: str) -> None: ...

    def cancel(self, job_id: int) -> None: ...
