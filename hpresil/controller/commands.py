"""The recovery steps a node's agent runs: a GPU reset and a burn-in.

The ladder (:mod:`hpresil.controller.recovery`) starts such a step as a running
:class:`~hpresil.store.models.RecoveryStepRow`; its command (:class:`NodeCommand`, the
step's id) rides on the answer to every report of that node (:class:`Offers`) until
the agent's report of its results is taken, which ends the step (:func:`record`, in
the report's transaction: a report taken once answers it once). The agent runs an
id once; an agent that restarted before answering runs it again. Nothing but the
node's own reports carry its commands, so they are signed and checked like them.

Which nodes have a command waiting is read at most once a second (one query for the
fleet), so the heartbeats of every other node do not pay for it; a replica sees a
command the leader started within that second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from sqlalchemy import ColumnElement, Select, and_, select
from sqlalchemy.orm import Session

from hpresil.adapters.gpu.reset import CHECK as RESET
from hpresil.api import NodeCommand
from hpresil.burnin.verdict import verdict
from hpresil.controller.policy import clip
from hpresil.store import Clock, Store
from hpresil.store.models import IncidentRow, RecoveryStepRow, StepStatus
from hpresil.vocab import CheckResult, Report, Status

log = logging.getLogger(__name__)

AgentRung = Literal["reset_gpu", "burnin"]
AGENT_RUNGS: tuple[AgentRung, ...] = ("reset_gpu", "burnin")
REFRESH_S = 1.0  # how stale the list of nodes with a command waiting may be
OUTCOME_MAX = 500  # a step's outcome, in characters


class Offers:
    """The commands to give a node in the answer to its report."""

    def __init__(self, store: Store, clock: Clock, *, refresh_s: float | None = None) -> None:
        self._store, self._clock = store, clock
        self._refresh_s = refresh_s  # None: REFRESH_S, as it is at each call
        self._lock = threading.Lock()
        self._nodes: frozenset[str] = frozenset()
        self._read_at = -float("inf")  # monotonic

    def outstanding(self, node: str) -> bool:
        """Whether ``node`` may have a command waiting (as of at most a second ago)."""
        with self._lock:
            every = REFRESH_S if self._refresh_s is None else self._refresh_s
            if time.monotonic() - self._read_at >= every:
                with self._store.read() as s:
                    waiting = select(IncidentRow.node).join(IncidentRow.recovery).where(_waiting())
                    self._nodes = frozenset(s.scalars(waiting))
                self._read_at = time.monotonic()
            return node in self._nodes

    def for_node(self, node: str) -> list[NodeCommand]:
        """``node``'s waiting commands, each marked sent the first time."""
        if not self.outstanding(node):
            return []
        with self._store.read() as s:
            steps = s.scalars(_running().where(IncidentRow.node == node)).all()
            given = [_command(step) for step in steps]
            first = [step.id for step in steps if step.sent_at is None]
        if first:  # a write only the first time: its node's heartbeats are reads after
            with self._store.write() as s:
                for step in s.scalars(select(RecoveryStepRow).where(RecoveryStepRow.id.in_(first))):
                    step.sent_at = step.sent_at or self._clock()
                    log.info("%s: %s (step #%d) given to its agent", node, step.rung, step.id)
        return given


def record(s: Session, report: Report, now: datetime) -> None:
    """End the step ``report`` answers, by its results (in the report's transaction)."""
    step = s.get(RecoveryStepRow, report.command)
    if step is None or step.rung not in AGENT_RUNGS or step.incident.node != report.node:
        log.warning("%s: results for command %s, not one of its own", report.node, report.command)
        return
    if step.status != "running":
        log.info("%s: results for step #%d, already %s", report.node, step.id, step.status)
        return
    step.status, step.outcome = judge(step.rung, report.results)
    step.ended_at = now
    log.info("%s: %s %s: %s", report.node, step.rung, step.status, step.outcome)


def judge(rung: str, results: Sequence[CheckResult]) -> tuple[StepStatus, str]:
    """How a step ended, by the results its agent sent."""
    if rung == "reset_gpu":
        refused = [r for r in results if r.check == RESET and r.status is not Status.OK]
        if refused or not results:
            return "failed", clip(
                "reset refused: " + _summaries(refused or results, "no result"), OUTCOME_MAX
            )
        return "passed", clip("reset: " + _summaries(results, ""), OUTCOME_MAX)
    code = verdict(results)
    failed = [r for r in results if r.status is Status.FAIL]
    if code == 1:
        return "failed", clip("burn-in failed: " + _summaries(failed, ""), OUTCOME_MAX)
    if code == 2:
        unknown = [r for r in results if r.status is Status.UNKNOWN]
        why = _summaries(unknown, "nothing could be measured")
        return "stopped", clip(f"burn-in could not check ({why}); left to an operator", OUTCOME_MAX)
    passed = [r.check for r in results if r.status in (Status.OK, Status.WARN)]
    return "passed", f"burn-in passed: {', '.join(sorted(set(passed)))}"


def _summaries(results: Sequence[CheckResult], empty: str) -> str:
    return "; ".join(r.summary for r in results[:4]) or empty


def _running() -> Select[RecoveryStepRow]:
    return (
        select(RecoveryStepRow)
        .join(IncidentRow, IncidentRow.id == RecoveryStepRow.incident_id)
        .where(_waiting())
        .order_by(RecoveryStepRow.id)
    )


def _waiting() -> ColumnElement[bool]:
    return and_(RecoveryStepRow.status == "running", RecoveryStepRow.rung.in_(AGENT_RUNGS))


def _command(step: RecoveryStepRow) -> NodeCommand:
    incident = step.incident
    gpus: list[str] = []
    if step.rung == "reset_gpu" and incident.gpu_index is not None:
        gpus = [incident.gpu_pci or str(incident.gpu_index)]
    kind: AgentRung = "reset_gpu" if step.rung == "reset_gpu" else "burnin"
    return NodeCommand(id=step.id, kind=kind, gpus=gpus)
