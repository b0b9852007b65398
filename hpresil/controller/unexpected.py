"""Nodes that rebooted unasked: a kernel panic, a power loss, a watchdog.

slurmctld marks a node whose slurmd registers with a boot time after its last answer
DOWN with the reason "Node unexpectedly rebooted boot=… last response=…" (only when
it had no reason, or "Not responding"; ``ReturnToService`` other than 2) and kills its
jobs. It stays DOWN until someone acts. hpresil acts as the recovery ladder does for a
reboot it asked for: it opens an incident (a ``host`` fault: it counts against the
node's MTTF), records the reboot Slurm saw as a passed ``reboot`` step, and takes the
node's reason over (``hpresil: #N unexpected reboot``) so that it stays out of
service; the ladder then burns it in and resumes it, or sends it to replace.

Only that reason of Slurm's own is taken: a node an operator took out, whatever its
state, is never touched. Runs on the leader before the ladder's pass
(:meth:`hpresil.controller.recovery.Ladder.run_once`).
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from hpresil.adapters.slurm import Slurm
from hpresil.controller.policy import clip, one_line
from hpresil.errors import HpresilError, SlurmError
from hpresil.store import Clock, Store, repo
from hpresil.store.models import NodeRow
from hpresil.vocab import Action, Category

log = logging.getLogger(__name__)

SLURMS = "Node unexpectedly rebooted"  # slurmctld's reason (src/slurmctld/node_mgr.c)
SUMMARY = "slurm: " + SLURMS  # the summary of the incidents opened here


def adopt(store: Store, slurm: Slurm, clock: Clock) -> int:
    """Take the nodes Slurm marked down after an unexpected reboot (as the reconcile
    pass last saw Slurm); answers how many were taken. The incident is opened first
    and the reason taken over after: a pass that could not take it (Slurm down, the
    controller stopped in between) takes it at the next one."""
    taken = 0
    for name, reason in _marked(store):
        number = _incident(store, clock, name, reason)
        if number is None:
            continue  # another incident is open on it: not this module's
        try:
            done = slurm.take_over(name, f"#{number} unexpected reboot", SLURMS)
        except (SlurmError, HpresilError) as exc:
            log.warning("%s: unexpected reboot not taken over yet: %s", name, one_line(exc))
            continue
        if done:
            log.warning("%s rebooted unasked: incident #%d, burn-in before service", name, number)
            taken += 1
    return taken


def _marked(store: Store) -> list[tuple[str, str]]:
    with store.read() as s:
        found = s.execute(
            select(NodeRow.name, NodeRow.slurm_reason).where(
                NodeRow.slurm_reason.startswith(SLURMS), NodeRow.hold_by.is_(None)
            )
        ).all()
    return [(name, reason or SLURMS) for name, reason in found]


def _incident(store: Store, clock: Clock, name: str, reason: str) -> int | None:
    """The node's unexpected-reboot incident, opened now if it has none; None when
    another incident is open on it."""
    now = clock()
    with store.write() as s:
        current = repo.open_incident(s, name)
        if current is not None:
            return current.id if current.summary.startswith(SUMMARY) else None
        incident = repo.new_incident(
            s,
            name,
            now,
            category=Category.HOST,
            action=Action.REBOOT,
            hardware=True,
            summary=clip(f"{SUMMARY}{reason[len(SLURMS) :]}"),
            findings=1,
        )
        incident.drained_at = now
        back = clip(f"back, DOWN ({reason}); awaiting burn-in")
        repo.add_step(s, incident, "reboot", "slurm: the node rebooted unasked", now, passed=back)
        s.flush()
        return incident.id
