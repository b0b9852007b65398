"""Bounded power: whether a drain the policy decided may be done (policy.mode and
``[policy.limits]``, :mod:`hpresil.config.limits`).

Asked once per drain, in the report's transaction, after the incident is opened (so
the incident counts itself). In order:

1. **shadow mode**: every drain is held back ("would drain"), nothing in Slurm;
2. **the breaker** of the drain's category: tripped, or tripping now because the
   category hit more than ``breaker_nodes`` nodes within ``breaker_window_s``: held
   back, one fleet alert when it trips, until an operator resets it. The nodes of one
   shared component (:mod:`hpresil.controller.shared`) count once while it is the
   only one (:func:`breaker_count`);
3. **the cap**: with ``allowed_out`` nodes already out because of hpresil, held back
   (an alert when the first is held back in an hour); a fault in ``never_wait`` still
   has its jobs requeued (``requeue_node``), the node left in service.

A drain the cap held back is done later, once there is room (the reconcile pass
calls :func:`drain_held_back`); one the breaker or shadow mode held back stays a
record, and its incident is resolved by the node's next report without a fault
(:func:`only_recorded`), so that a later fault is an incident of its own.

A held-back drain is still recorded, as a skipped ``drain`` action whose outcome
says which limit held it (``shadow``, ``breaker``, ``capped``) and whose ``why`` says
how: the ledger shows what hpresil would have done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.orm import Session

from hpresil.config import PolicyConfig
from hpresil.store import limits as ledger
from hpresil.store import repo
from hpresil.store.models import IncidentRow
from hpresil.vocab import Category
from hpresil.vocab.actions import ActionStatus

log = logging.getLogger(__name__)

HeldBy = Literal["shadow", "breaker", "capped"]
ALERT_EVERY = timedelta(hours=1)  # a cap alert at most this often


@dataclass(frozen=True)
class Allowance:
    """What may be done of a drain: all of it, or nothing but the record (and, past
    the cap, the requeue of a fault that cannot wait)."""

    drain: bool = True
    held_by: HeldBy | None = None
    why: str = ""  # what held it back, for the action's why
    requeue_only: bool = False  # requeue the node's jobs without draining it
    alert: dict[str, Any] | None = field(default=None)  # a webhook event to send


ALLOWED = Allowance()


def allowance(
    s: Session,
    node: str,
    category: Category,
    requeue: bool,
    cfg: PolicyConfig,
    now: datetime,
) -> Allowance:
    """May ``node`` be drained for a fault of ``category``?"""
    if cfg.mode == "shadow":
        return Allowance(False, "shadow", "shadow mode (policy.mode): would drain")
    held = _breaker(s, node, category, cfg, now)
    if held is not None:
        return held
    return _cap(s, node, category, requeue, cfg, now)


def _breaker(
    s: Session, node: str, category: Category, cfg: PolicyConfig, now: datetime
) -> Allowance | None:
    limits = cfg.limits
    open_one = ledger.tripped(s, category)
    if open_one is not None:
        open_one.held_back += 1
        why = (
            f"breaker open on {category.value} since {open_one.tripped_at.isoformat()} "
            f"(`hpresil breaker reset {category.value}` once the cause is found)"
        )
        return Allowance(False, "breaker", why)
    hit = breaker_count(
        ledger.nodes_hit(s, category, now - timedelta(seconds=limits.breaker_window_s))
    )
    if len(hit) <= limits.breaker_nodes:
        return None
    why = (
        f"{category.value} on {len(hit)} nodes within {limits.breaker_window_s:g} s "
        f"(policy.limits.breaker_nodes = {limits.breaker_nodes}): the check or the "
        "environment, not the nodes"
    )
    row = ledger.trip(s, category, hit, why, now)
    row.held_back = 1
    log.error("breaker tripped: %s; holding back its drains", why)
    alert = {
        "event": "breaker_tripped",
        "category": category.value,
        "nodes": sorted(hit),
        "why": why,
        "at": now.isoformat(),
    }
    return Allowance(False, "breaker", f"breaker tripped: {why}", alert=alert)


def breaker_count(hit: dict[str, str | None]) -> set[str]:
    """What the breaker counts of the nodes ``hit``: each node, except that the nodes
    put down to one shared component count once, as it, while it is the only one (one
    switch dying is one thing gone wrong; several components at once, every node counts
    again: that is the environment or the check)."""
    components = {c for c in hit.values() if c is not None}
    if len(components) > 1:
        return set(hit)
    return {node if component is None else component for node, component in hit.items()}


def _cap(
    s: Session,
    node: str,
    category: Category,
    requeue: bool,
    cfg: PolicyConfig,
    now: datetime,
) -> Allowance:
    limits = cfg.limits
    out = ledger.nodes_out(s) - {node}
    fleet = ledger.fleet_size(s)
    allowed = limits.allowed_out(fleet)
    if len(out) < allowed:
        return ALLOWED
    why = (
        f"{len(out)} nodes already out because of hpresil, {allowed} allowed "
        f"(policy.limits: max_out {limits.max_out}, max_out_pct {limits.max_out_pct:g} "
        f"of {fleet} nodes)"
    )
    alert = None
    if ledger.held_back_since(s, "capped", now - ALERT_EVERY) == 0:  # told once an hour
        log.warning("%s: drain held back, and those after it: %s", node, why)
        alert = {"event": "drain_capped", "node": node, "why": why, "at": now.isoformat()}
    else:
        log.debug("%s: drain held back: %s", node, why)
    requeue_only = requeue and category in limits.never_wait
    return Allowance(False, "capped", why, requeue_only=requeue_only, alert=alert)


def breaker_tripped(s: Session, category: Category) -> bool:
    """Whether the breaker of ``category`` is tripped now (its alerts said enough)."""
    return ledger.tripped(s, category) is not None


def only_recorded(incident: IncidentRow) -> bool:
    """Whether every drain of ``incident`` was held back by shadow mode or a breaker
    (the node was never taken out, and none will be done for it)."""
    drains = [a for a in incident.actions if a.kind == "drain"]
    return bool(drains) and all(a.outcome in ("shadow", "breaker") for a in drains)


HELD_MARK = "; held back: "  # between the decision's why and what held it back


def drain_held_back(s: Session, cfg: PolicyConfig, now: datetime) -> int:
    """Queue the drains the cap held back, oldest incident first, while the cap has
    room (and their category's breaker is not tripped); answers how many."""
    if cfg.mode == "shadow":
        return 0
    fleet_allows = cfg.limits.allowed_out(ledger.fleet_size(s))
    queued = 0
    for incident in sorted(repo.open_incidents(s).values(), key=lambda i: i.id):
        drains = [a for a in incident.actions if a.kind == "drain"]
        if not drains or drains[-1].outcome != "capped":
            continue
        if any(a.status in (ActionStatus.PENDING, ActionStatus.DONE) for a in drains):
            continue
        if len(ledger.nodes_out(s)) >= fleet_allows:
            break
        if ledger.tripped(s, incident.category) is not None:
            continue
        held = drains[-1]
        cause = held.why.split(HELD_MARK, 1)[0]
        repo.add_action(
            s,
            kind="drain",
            target=incident.node,
            why=f"{cause}; the cap has room again",
            now=now,
            incident=incident,
            requeue_jobs=held.requeue_jobs,
        )
        s.flush()
        log.info("%s: drain held back by the cap queued now", incident.node)
        queued += 1
    return queued
