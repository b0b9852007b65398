"""The recovery ladder: bringing a node hpresil drained back to service, a rung at a
time, each step in the ledger (``recovery_steps``: its rung, why, start, end and how
it ended) and shown with its incident.

Built so far: the **reboot** rung. An incident the policy answers with a GPU reset or
a reboot (a reset climbs to a reboot until the reset rung is built), on a node hpresil
drained (its reason hpresil's, not an operator's, not a shared component's fault),
once no job runs there: the executor asks Slurm for ``scontrol reboot ASAP
nextstate=DOWN`` with the drain's reason (a ``reboot`` action). Slurm's RebootProgram
reboots the node; it comes back DOWN with the reason (Slurm appends " : reboot issued
: reboot complete"), so it takes no job. The step passes when Slurm says the node
booted after the request and no reboot is pending; it fails when Slurm reports
"reboot timed out" (its ResumeTimeout) or the node is not back within
``recovery.reboot_timeout_s``, and stops when someone else's reason replaced
hpresil's (an operator took the node over). The rung after it, a burn-in that returns
the node to service, is not built yet: a rebooted node waits, DOWN, for an operator's
``hpresil resume``.

And the **replace** rung: an incident the policy answers with *replace* (a fault that
recurred on one GPU climbed NVIDIA's ladder to it) gets a ``replace`` action
(:mod:`hpresil.controller.replace`): the node's reason says it waits for replacement
and the site's hook runs with the incident. The step passes once that is done. The
ladder never resumes such a node, and never reboots it.

Runs on the leader, once per reconcile pass (:class:`hpresil.controller.service.Duties`),
given the pass's jobs. Slurm is read outside any transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Select, select

from hpresil.adapters.slurm import Slurm, SlurmJob, SlurmNode
from hpresil.config.recovery import RecoveryConfig
from hpresil.controller import replace
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
from hpresil.vocab.actions import ActionStatus, RebootOutcome

log = logging.getLogger(__name__)

# The rung an incident's action takes, and the executor's action that starts it
# (its name is both: a Rung and an ActionKind)
RUNGS: dict[Action, Literal["reboot", "replace"]] = {
    Action.RESET_GPU: "reboot",  # until the reset rung is built
    Action.REBOOT: "reboot",
    Action.REPLACE: "replace",
}
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
        wake: Callable[[], None] = lambda: None,  # the executor: a reboot was queued
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
        busy = {node for job in jobs if job.state in BUSY for node in job.nodes}
        if self._start(busy):
            self._wake()
        for watch in self._watched():
            self._follow(watch)

    # --- starting ---
    def _start(self, busy: set[str]) -> int:
        """Steps started (each an action queued for the executor)."""
        now, queued = self._clock(), 0
        with self._store.write() as s:
            for incident in s.scalars(_due()):
                rung = RUNGS[incident.action]
                if rung == "reboot" and incident.node in busy:
                    continue  # a reboot waits for the node's jobs; the drain lets them end
                why = f"policy: {incident.action.value} for #{incident.id} " + (
                    f"({incident.summary or incident.category.value})"
                )
                why += "; the node is free" if rung == "reboot" else "; nothing resumes it"
                s.add(RecoveryStepRow(incident=incident, rung=rung, why=why, started_at=now))
                repo.add_action(
                    s, kind=rung, target=incident.node, why=why, now=now, incident=incident
                )
                log.info("%s: %s for incident #%d", incident.node, rung, incident.id)
                queued += 1
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
            return
        if watch.held is not None:
            self._end(watch, "stopped", f"an operator holds the node: {watch.held}")
            return
        if watch.action is ActionStatus.PENDING:
            return  # the executor has not run it yet
        if watch.action is ActionStatus.SKIPPED:
            self._end(watch, "stopped", f"not done: {watch.outcome}")
            return
        if watch.action is not ActionStatus.DONE:
            self._end(watch, "failed", f"{watch.rung} not done: {watch.outcome}")
            return
        if watch.rung == "replace":
            self._end(watch, "passed", _REPLACED.get(watch.outcome or "", watch.outcome or ""))
            return
        try:
            node = self._slurm.node(watch.node)
        except (SlurmError, HpresilError) as exc:  # Slurm down: the step waits
            log.warning("reboot of %s: slurm not read: %s", watch.node, one_line(exc))
            return
        ended = self._judged(watch, node)
        if ended is not None:
            self._end(watch, *ended)

    def _judged(self, watch: _Watch, node: SlurmNode) -> tuple[StepStatus, str] | None:
        """How the step ended, by what Slurm says of its node now; None: not yet."""
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


def _due() -> Select[IncidentRow]:
    """Open incidents the reboot rung takes and has not taken yet, on nodes hpresil
    drained (as the reconcile pass last saw Slurm)."""
    return (
        select(IncidentRow)
        .join(NodeRow, NodeRow.name == IncidentRow.node)
        .where(
            NodeRow.drained_by_hpresil.is_(True),
            NodeRow.hold_by.is_(None),
            IncidentRow.status == "open",
            IncidentRow.action.in_(RUNGS),
            IncidentRow.drained_at.is_not(None),
            IncidentRow.job_id.is_(None),
            IncidentRow.shared_id.is_(None),
            ~IncidentRow.recovery.any(),
        )
        .order_by(IncidentRow.id)
    )


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
        started_at=step.started_at,
        open=incident.status == "open",
        held=None if node is None or node.hold_by is None else f"{node.hold_by}: {node.hold_why}",
        action=None if last is None else last.status,
        outcome=outcome,
    )
