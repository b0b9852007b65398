"""What a person asks through the API: drain a node, return it to service.

Both run against Slurm at once (the answer carries Slurm's outcome) and are
recorded as actions. A drain opens an ``operator`` incident unless the node has an
open one; a resume closes the node's open incidents. hpresil never resumes a node
someone else drained. Each action's ``why`` names who asked (``by``: the API's caller,
``operator (token)``, or ``node1 (node key)`` for a node's health hook draining itself).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from hpresil.adapters.slurm import Slurm, SlurmNode
from hpresil.api import DrainAnswer, HoldView, ResumeAnswer
from hpresil.config import PolicyConfig
from hpresil.controller.errors import Conflict, NotFound
from hpresil.controller.policy import clip
from hpresil.controller.reconcile import sync_node
from hpresil.errors import SlurmError
from hpresil.store import Clock, Store, repo
from hpresil.store.models import IncidentRow, NodeRow
from hpresil.vocab import Action, Category
from hpresil.vocab.actions import ActionStatus, DrainOutcome, ResumeOutcome

log = logging.getLogger(__name__)


class Operator:
    def __init__(self, store: Store, slurm: Slurm, cfg: PolicyConfig, clock: Clock) -> None:
        self._store = store
        self._slurm = slurm
        self._cfg = cfg
        self._clock = clock

    def drain(self, name: str, reason: str, *, by: str, gate: bool = False) -> DrainAnswer:
        """Drain ``name``; with ``gate``, through the burn-in gate (the recovery ladder
        burns it in, and resumes it once the burn-in passes)."""
        self._known(name)
        outcome = self._slurm.drain(name, clip(f"{self._cfg.reason_prefix} operator: {reason}"))
        now = self._clock()
        with self._store.write() as s:
            repo.ensure_node(s, name, now)
            incident = repo.open_incident(s, name)
            if outcome is not DrainOutcome.FOREIGN:
                incident = incident or repo.new_incident(
                    s,
                    name,
                    now,
                    category=Category.OPERATOR,
                    action=Action.DRAIN,
                    summary=reason,
                    findings=1,
                )
                incident.drained_at = incident.drained_at or now
                if gate:
                    _gate(s, incident, f"{by}: burn-in gate: {reason}", now)
            status = ActionStatus.SKIPPED if outcome is DrainOutcome.FOREIGN else ActionStatus.DONE
            repo.add_action(
                s,
                kind="drain",
                target=name,
                why=f"{by}: {reason}",
                now=now,
                incident=incident,
                done=(status, outcome.value),
            )
            s.flush()
            opened = incident.id if incident else None
        log.info("drain of %s by %s (%s): %s", name, by, reason, outcome)
        self._refresh(name)
        return DrainAnswer(outcome=outcome, incident=opened)

    def resume(self, name: str, *, by: str) -> ResumeAnswer:
        node = self._known(name)
        outcome = self._slurm.resume(name)
        if outcome is ResumeOutcome.NOT_OURS:
            raise Conflict(_not_ours(node))
        now = self._clock()
        with self._store.write() as s:
            repo.ensure_node(s, name, now)
            opened = list(repo.incidents(s, "open", name, details=False))
            for incident in opened:
                repo.resolve(s, incident, now)
            status = ActionStatus.DONE if outcome is ResumeOutcome.RESUMED else ActionStatus.SKIPPED
            repo.add_action(
                s,
                kind="resume",
                target=name,
                why=f"{by}: return to service",
                now=now,
                incident=opened[0] if opened else None,
                done=(status, outcome.value),
            )
        log.info("resume of %s by %s: %s", name, by, outcome)
        self._refresh(name)
        return ResumeAnswer(outcome=outcome, resolved_incidents=[i.id for i in opened])

    def hold(self, name: str, why: str, *, by: str) -> HoldView:
        """``by`` takes ``name`` over: the recovery ladder starts nothing on it and stops
        what it has under way, until :meth:`release` (a hold already there is renewed)."""
        self._known(name)
        now = self._clock()
        with self._store.write() as s:
            row = repo.ensure_node(s, name, now)
            row.hold_by, row.hold_why, row.hold_at = by, why, now
        log.info("%s held by %s: %s", name, by, why)
        return HoldView(node=name, held_by=by, why=why, since=now)

    def release(self, name: str, *, by: str) -> HoldView:
        with self._store.write() as s:
            row = s.get(NodeRow, name)
            if row is None or row.hold_by is None:
                raise Conflict(f"node {name} is not held")
            row.hold_by = row.hold_why = row.hold_at = None
        log.info("%s released by %s", name, by)
        return HoldView(node=name, held_by=None, why=None, since=None)

    def _known(self, name: str) -> SlurmNode:
        node = next((n for n in self._slurm.nodes() if n.name == name), None)
        if node is None:
            raise NotFound(f"slurm has no node named {name!r}")
        return node

    def _refresh(self, name: str) -> None:
        """Record the node's new Slurm state now rather than at the next reconcile."""
        try:
            node = self._known(name)
        except (SlurmError, NotFound) as exc:
            log.warning("could not refresh %s from slurm: %s", name, exc)
            return
        with self._store.write() as s:
            row = s.get(NodeRow, name)
            sync_node(s, row, node, self._slurm.owns(node), self._clock())


def _not_ours(node: SlurmNode) -> str:
    who = f" by {node.reason_set_by}" if node.reason_set_by else ""
    reason = f" (reason: {node.reason!r}{who})" if node.reason else ""
    return (
        f"node {node.name} was drained by someone else{reason}; "
        "hpresil resumes only nodes it drained"
    )


def _gate(s: Session, incident: IncidentRow, why: str, now: datetime) -> None:
    """The burn-in gate on ``incident``'s ladder: a ``gate`` step, passed at once, that
    the ladder follows with a burn-in once the node is free (unless its ladder is
    under way already)."""
    if incident.recovery:
        return
    outcome = "in the burn-in gate: back in service only once its burn-in passes"
    repo.add_step(s, incident, "gate", clip(why), now, passed=outcome)
