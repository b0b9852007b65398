"""Faults that share a component: several nodes under one switch, rack or power
domain failing alike at once are the component's fault, not theirs.

Asked when a node incident opens, in the report's transaction, before the limits
(so that the breaker counts the component once, :mod:`hpresil.controller.limits`).
For each component over the node whose kind can cause the incident's category
(``[topology]``), the open incidents of that category under it detected within
``window_s`` are counted; a component *explains* them when they are at least
``min_nodes`` and ``min_share`` of its nodes. Of the components that explain them,
the one with the most failed nodes wins, the smaller on a tie: two nodes of one
leaf are the leaf's, three nodes across two leaves are the spine's.

The winner's shared incident (opened now if it has none) takes every one of those
node incidents; an open shared incident of a smaller component whose nodes are all
under the winner is merged into it. The nodes are still drained (a dead switch
leaves them useless), with the component in the drain reason; their incidents do
not count against their MTTF. The shared incident is resolved when the last of its
node incidents is (:func:`hpresil.store.repo.resolve`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from hpresil.config.topology import TopologyConfig
from hpresil.controller.topology import Component, Topology
from hpresil.store import shared as ledger
from hpresil.store.models import IncidentRow, SharedFaultRow
from hpresil.vocab import Category

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attributed:
    row: SharedFaultRow
    opened: bool  # a new shared incident (one alert)

    def alert(self, now: datetime) -> dict[str, Any]:
        return {
            "event": "shared_fault",
            "kind": self.row.kind,
            "component": self.row.component,
            "category": self.row.category.value,
            "nodes": list(self.row.nodes),
            "why": self.row.why,
            "at": now.isoformat(),
        }


def attribute(
    s: Session, incident: IncidentRow, topology: Topology, cfg: TopologyConfig, now: datetime
) -> Attributed | None:
    """Put ``incident`` (and its peers) down to a shared component, if one explains
    them; None when none does."""
    if incident.job_id is not None or not incident.category.is_hardware:
        return None
    since = now - timedelta(seconds=cfg.window_s)
    best: tuple[tuple[int, int], Component, dict[int, str]] | None = None
    for component in topology.containing(incident.node):
        if incident.category not in cfg.categories(component.kind):
            continue
        failing = ledger.failing(s, component.nodes, incident.category, since)
        failed = len(set(failing.values()))
        if failed < cfg.min_nodes or failed < cfg.min_share * len(component.nodes):
            continue
        rank = (failed, -len(component.nodes))
        if best is None or rank > best[0]:
            best = (rank, component, failing)
    if best is None:
        return None
    _, component, failing = best
    inner = {(c.kind, c.name) for c in topology.within(component)}
    return _take(s, component, inner, failing, incident.category, cfg, now)


def _take(
    s: Session,
    component: Component,
    inner: set[tuple[str, str]],
    failing: dict[int, str],
    category: Category,
    cfg: TopologyConfig,
    now: datetime,
) -> Attributed:
    """``component``'s shared incident takes the incidents ``failing`` (id -> node) and
    the open shared incidents of the components ``inner`` to it."""
    failed = set(failing.values())
    open_ones = ledger.open_faults(s, category, inner)
    row = next(
        (r for r in open_ones if (r.kind, r.component) == (component.kind, component.name)), None
    )
    opened = row is None
    if row is None:
        why = (
            f"{category.value} on {len(failed)} of the {len(component.nodes)} nodes "
            f"under {component.label} within {cfg.window_s:g} s"
        )
        row = ledger.open_fault(
            s, component.kind, component.name, category, why, size=len(component.nodes), now=now
        )
        log.error("shared fault #%d: %s", row.id, why)
    for smaller in open_ones:
        if smaller.id != row.id:
            ledger.merge(s, smaller, row, now)
            log.info("shared fault #%d merged into #%d (%s)", smaller.id, row.id, component.label)
    ledger.attach(s, row, failing)
    if not failed <= set(row.nodes):
        row.nodes = sorted({*row.nodes, *failed})
    s.flush()
    return Attributed(row, opened)
