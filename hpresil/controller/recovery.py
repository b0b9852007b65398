"""The recovery ladder: bringing a node hpresil drained back to service, a rung at a
time, each step in the ledger (``recovery_steps``: its rung, why, start, end and how
it ended) and shown with its incident.

An open incident on a node hpresil drained (its reason hpresil's, not an operator's,
not a shared component's fault, no operator's hold), once no job runs there, starts
at the rung of its action and climbs:

- **reset_gpu** (a GPU reset): the node's agent runs ``nvidia-smi -r`` on the GPU
  (:mod:`hpresil.controller.commands`: the command rides on the answer to its
  report); passed → burn-in, refused (a process on the GPU, a GPU off the bus, an
  NVSwitch system's fabric manager) → reboot.
- **reboot**: the executor asks Slurm for ``scontrol reboot ASAP nextstate=DOWN``
  with the drain's reason (a ``reboot`` action). Slurm's RebootProgram reboots the
  node; it comes back DOWN with the reason (Slurm appends " : reboot issued : reboot
  complete"), so it takes no job. Passed when Slurm says the node booted after the
  request and no reboot is pending → burn-in; failed when Slurm reports "reboot timed
  out" (its ResumeTimeout) or the node is not back within ``recovery.reboot_timeout_s``
  → replace.
- **burnin**: the agent runs the burn-in tier (GEMM and memory bandwidth per GPU,
  nccl-tests, gpu_burn, DCGM's diagnostic, where installed) and reports the results;
  passed → resume, failed → replace; could not check (nothing measured) stops, the
  node left to an operator.
- **resume**: Slurm returns the node to service, only if its reason is still
  hpresil's; the incident is resolved: the node is back.
- **replace** (the policy's answer to a fault recurring on one GPU or node, or a rung
  that failed): the node's reason says it waits for replacement and the site's hook
  runs with the incident (:mod:`hpresil.controller.replace`). Nothing resumes it but
  an operator.

An operator's ``hpresil burnin --gate NODE`` (a new node, a repaired one) drains the
node and puts a passed **gate** step on its incident's ladder: the burn-in follows
once the node is free, then the resume, so a node that never worked takes no job.

A node that rebooted unasked (Slurm marks it DOWN, "Node unexpectedly rebooted") is
taken in the same way, from its burn-in (:mod:`hpresil.controller.unexpected`).

A step stops, and the ladder with it, when someone else's reason replaced hpresil's,
an operator holds the node (``hpresil hold``), resolved the incident (``hpresil
resume``), or the agent did not answer a command in its time.

Runs on the leader, once per reconcile pass (:class:`hpresil.controller.service.Duties`),
given the pass's jobs. Slurm is read outside any transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import selectinload

from hpresil.adapters.slurm import Slurm, SlurmJob, SlurmNode
from hpresil.config.recovery import RecoveryConfig
from hpresil.controller import replace, unexpected
from hpresil.controller.commands import AGENT_RUNGS
from hpresil.controller.policy import one_line
from hpresil.errors import HpresilError, SlurmError
from hpresil.store import Clock, Store, repo
from hpresil.store.models import (
    ActionRow,
    IncidentRow,
    NodeRow,
    RecoveryStepRow,
    Rung,
    StepStatus,
)
from hpresil.vocab import Action
from hpresil.vocab.actions import ActionStatus, RebootOutcome, ResumeOutcome

log = logging.getLogger(__name__)

FIRST: dict[Action, Rung] = {  # the rung an incident's action starts at
    Action.RESET_GPU: "reset_gpu",
    Action.REBOOT: "reboot",
    Action.REPLACE: "replace",
}
NEXT: dict[tuple[Rung, StepStatus], Rung] = {  # where a step that ended leads
    ("gate", "passed"): "burnin",  # hpresil burnin --gate NODE
    ("reset_gpu", "passed"): "burnin",
    ("reset_gpu", "failed"): "reboot",
    ("reboot", "passed"): "burnin",
    ("reboot", "failed"): "replace",
    ("burnin", "passed"): "resume",
    ("burnin", "failed"): "replace",
}
ON_A_FREE_NODE: frozenset[Rung] = frozenset({"reset_gpu", "reboot", "burnin"})
_REPLACED = {
    replace.RAN: "marked for replacement in Slurm; the replace hook ran",
    replace.NO_HOOK: "marked for replacement in Slurm (no replace hook configured)",
}
BUSY = frozenset({"RUNNING", "COMPLETING", "SUSPENDED", "CONFIGURING"})
TIMED_OUT = "reboot timed out"  # what slurmctld appends to the reason (ResumeTimeout)
BOOT_SLACK = timedelta(seconds=2)  # Slurm's boot time is whole seconds, its clock may lag


@dataclass(frozen=True)
class _Watch:
    """A running step and its action, as read before Slurm is asked about its node."""

    step: int
    rung: Rung
    node: str
    incident: int
    started_at: datetime
    open: bool  # its incident is open (an operator's resume resolves it)
    held: str | None  # an operator's hold on the node: who, and why
    action: ActionStatus | None  # its action's status (None: not found)
    outcome: str | None  # ... its outcome, or the error that failed it


class Ladder:
    def __init__(
        self,
        store: Store,
        slurm: Slurm,
        cfg: RecoveryConfig,
        clock: Clock,
        wake: Callable[[], None] = lambda: None,  # the executor: an action was queued
    ) -> None:
        self._store = store
        self._slurm = slurm
        self._cfg = cfg
        self._clock = clock
        self._wake = wake

    def run_once(self, jobs: Iterable[SlurmJob]) -> None:
        """Start the steps that are due, then follow those under way."""
        if not self._cfg.enabled:
            return
        if self._cfg.unexpected_reboots:
            unexpected.adopt(self._store, self._slurm, self._clock)
        busy = {node for job in jobs if job.state in BUSY for node in job.nodes}
        if self._start(busy):
            self._wake()
        for watch in self._watched():
            self._follow(watch)

    # --- starting ---
    def _start(self, busy: set[str]) -> int:
        """Steps started; answers how many queued an action for the executor."""
        now, queued = self._clock(), 0
        with self._store.write() as s:
            for incident in s.scalars(_candidates()):
                due = _due(incident)
                if due is None or (due[0] in ON_A_FREE_NODE and incident.node in busy):
                    continue  # a step on the node waits for its jobs; the drain lets them end
                rung, why = due
                repo.add_step(s, incident, rung, why, now)
                if rung == "reboot" or rung == "replace":  # the executor's actions
                    repo.add_action(
                        s, kind=rung, target=incident.node, why=why, now=now, incident=incident
                    )
                    queued += 1
                log.info("%s: %s for incident #%d: %s", incident.node, rung, incident.id, why)
        return queued

    # --- following ---
    def _watched(self) -> list[_Watch]:
        with self._store.read() as s:
            steps = s.scalars(
                select(RecoveryStepRow).where(RecoveryStepRow.status == "running")
            ).all()
            nodes = {step.incident.node: s.get(NodeRow, step.incident.node) for step in steps}
            return [_watch(step.incident, step, nodes[step.incident.node]) for step in steps]

    def _follow(self, watch: _Watch) -> None:
        if not watch.open:
            self._end(watch, "stopped", "the incident was resolved (the node resumed)")
        elif watch.held is not None:
            self._end(watch, "stopped", f"an operator holds the node: {watch.held}")
        elif watch.rung in AGENT_RUNGS:
            self._agent_step(watch)  # its agent's report ends it
        elif watch.rung == "resume":
            self._resume(watch)
        elif watch.action is ActionStatus.PENDING:
            return  # the executor has not run it yet
        elif watch.action is ActionStatus.SKIPPED:
            self._end(watch, "stopped", f"not done: {watch.outcome}")
        elif watch.action is not ActionStatus.DONE:
            self._end(watch, "failed", f"{watch.rung} not done: {watch.outcome}")
        elif watch.rung == "replace":
            self._end(watch, "passed", _REPLACED.get(watch.outcome or "", watch.outcome or ""))
        else:
            self._rebooting(watch)

    def _agent_step(self, watch: _Watch) -> None:
        limit = self._cfg.burnin_timeout_s if watch.rung == "burnin" else self._cfg.reset_timeout_s
        waited = (self._clock() - watch.started_at).total_seconds()
        if waited > limit:
            setting = "burnin_timeout_s" if watch.rung == "burnin" else "reset_timeout_s"
            why = f"its agent did not answer in {waited:.0f} s (recovery.{setting})"
            self._end(watch, "stopped", f"{why}; left to an operator")

    def _resume(self, watch: _Watch) -> None:
        """Back in service: Slurm resumes the node, if its reason is still hpresil's."""
        try:
            outcome = self._slurm.resume(watch.node)
        except (SlurmError, HpresilError) as exc:  # Slurm down: the step waits
            log.warning("resume of %s: slurm: %s", watch.node, one_line(exc))
            return
        if outcome is ResumeOutcome.NOT_OURS:
            self._end(watch, "stopped", "someone else holds the node now (its reason)")
            return
        now = self._clock()
        with self._store.write() as s:
            step, incident = s.get(RecoveryStepRow, watch.step), s.get(IncidentRow, watch.incident)
            if step is None or incident is None or step.status != "running":
                return
            repo.resolve(s, incident, now)
            why = f"recovery: #{incident.id} passed its burn-in"
            repo.add_action(
                s,
                kind="resume",
                target=watch.node,
                why=why,
                now=now,
                incident=incident,
                done=(ActionStatus.DONE, outcome.value),
            )
            step.status, step.ended_at = "passed", now
            step.outcome = "back in service" + (
                "" if outcome is ResumeOutcome.RESUMED else " (Slurm had it in service already)"
            )
        log.info("%s: back in service (incident #%d resolved)", watch.node, watch.incident)

    def _rebooting(self, watch: _Watch) -> None:
        try:
            node = self._slurm.node(watch.node)
        except (SlurmError, HpresilError) as exc:  # Slurm down: the step waits
            log.warning("reboot of %s: slurm not read: %s", watch.node, one_line(exc))
            return
        ended = self._judged(watch, node)
        if ended is not None:
            self._end(watch, *ended)

    def _judged(self, watch: _Watch, node: SlurmNode) -> tuple[StepStatus, str] | None:
        """How the reboot ended, by what Slurm says of its node now; None: not yet."""
        if not self._slurm.owns(node):
            who = f" by {node.reason_set_by}" if node.reason_set_by else ""
            return "stopped", f"someone else holds the node now: {node.reason!r}{who}"
        if TIMED_OUT in (node.reason or ""):
            return "failed", "slurm: reboot timed out (the node did not come back)"
        booted = node.boot_time is not None and node.boot_time >= watch.started_at - BOOT_SLACK
        if booted and not node.rebooting:
            stamp = node.boot_time.isoformat(timespec="seconds") if node.boot_time else "?"
            return "passed", f"back: booted {stamp}, {node.state_text}, awaiting burn-in"
        waited = (self._clock() - watch.started_at).total_seconds()
        if waited > self._cfg.reboot_timeout_s:
            return "failed", f"not back after {waited:.0f} s (recovery.reboot_timeout_s)"
        if not node.rebooting:  # the request is gone (cancelled) and it did not boot
            return "failed", f"no reboot pending and none done: {node.state_text}"
        return None

    def _end(self, watch: _Watch, status: StepStatus, outcome: str) -> None:
        with self._store.write() as s:
            step = s.get(RecoveryStepRow, watch.step)
            if step is None or step.status != "running":
                return
            step.status, step.outcome, step.ended_at = status, outcome, self._clock()
        log.info("%s: %s %s: %s", watch.node, watch.rung, status, outcome)


def _candidates() -> Select[IncidentRow]:
    """Open incidents the ladder takes, on nodes hpresil drained (as the reconcile pass
    last saw Slurm) and no operator holds, with their steps so far."""
    return (
        select(IncidentRow)
        .join(NodeRow, NodeRow.name == IncidentRow.node)
        .where(
            NodeRow.drained_by_hpresil.is_(True),
            NodeRow.hold_by.is_(None),
            IncidentRow.status == "open",
            or_(IncidentRow.action.in_(FIRST), IncidentRow.recovery.any()),  # or gated
            IncidentRow.drained_at.is_not(None),
            IncidentRow.job_id.is_(None),
            IncidentRow.shared_id.is_(None),
        )
        .options(selectinload(IncidentRow.recovery))
        .order_by(IncidentRow.id)
    )


def _due(incident: IncidentRow) -> tuple[Rung, str] | None:
    """The step ``incident``'s ladder takes next, and why; None: none (one is under
    way, or the ladder ended)."""
    if not incident.recovery:
        rung = FIRST[incident.action]
        why = f"policy: {incident.action.value} for #{incident.id} " + (
            f"({incident.summary or incident.category.value})"
        )
        return rung, why + ("; nothing resumes it" if rung == "replace" else "; the node is free")
    last = incident.recovery[-1]
    rung = NEXT.get((last.rung, last.status))  # type: ignore[assignment]
    if last.status == "running" or rung is None:
        return None
    if rung == "burnin":
        return rung, f"{last.rung} passed: tested before it takes a job" + (
            " (the node is free)" if last.rung == "gate" else ""
        )
    if rung == "resume":
        return rung, "burn-in passed: back to service"
    why = f"{last.rung} failed: {last.outcome or '?'}"
    return rung, why + ("; nothing resumes it" if rung == "replace" else "")


def _watch(incident: IncidentRow, step: RecoveryStepRow, node: NodeRow | None) -> _Watch:
    actions = [a for a in incident.actions if a.kind == step.rung]
    last: ActionRow | None = actions[-1] if actions else None
    outcome = None if last is None else (last.error or last.outcome)
    if last is not None and last.outcome in (RebootOutcome.NOT_OURS.value, replace.NOT_OURS):
        outcome = "someone else holds the node (its reason is not hpresil's)"
    return _Watch(
        step=step.id,
        rung=step.rung,
        node=incident.node,
        incident=incident.id,
        started_at=step.started_at,
        open=incident.status == "open",
        held=None if node is None or node.hold_by is None else f"{node.hold_by}: {node.hold_why}",
        action=None if last is None else last.status,
        outcome=outcome,
    )
