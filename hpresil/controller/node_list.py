"""``GET /v1/nodes`` at fleet size: the nodes asked for (a Slurm host list, a Slurm
state, only the unhealthy), in natural order, a page at a time.

A node's health: FAIL with an open hardware incident; else UNKNOWN if it never
reported, STALE if its last report is older than ``stale_after_s``; else the worst of
its latest results (FAIL, WARN, otherwise OK). Those are weighed cheapest first, and
the worst status is stored beside the results (``nodes.worst``, kept by the ingest).
Only a node stored before that column has its results read (for the page only): one
whose results hold neither ``"fail"`` nor ``"warn"`` is OK without parsing them (a
status is a JSON string, and the store's JSON spells strings plainly); the others are
parsed.

A host list is counted before it is expanded (the grammar of
:mod:`hpresil.adapters.slurm.hostlist`): ``a[1-1000][1-1000]`` is refused, not built.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from hpresil.adapters.slurm.hostlist import expand
from hpresil.api import MAX_NODES, NodeFilter, NodeView
from hpresil.controller.node_state import listed_health
from hpresil.errors import SlurmParseError
from hpresil.store import nodelist
from hpresil.store.nodelist import NodeBrief, OpenIncident
from hpresil.vocab import Health

NEXT_AFTER = "X-Next-After"  # more follow: the next page starts after this node
PAGED: dict[int | str, dict[str, Any]] = {
    200: {"headers": {NEXT_AFTER: {"description": "more nodes follow: ask after=<it>"}}}
}
NODE_LIST: TypeAdapter[list[NodeView]] = TypeAdapter(list[NodeView])
SCAN = 1000  # nodes judged at a time while looking for unhealthy ones
_RANGES = re.compile(r"^([^\[]*)\[([^\]]+)\](.*)$")
_WORRYING = ('"fail"', '"warn"')
_WORST = {h.value for h in (Health.OK, Health.WARN, Health.FAIL)}


class BadHostList(ValueError):
    """A host list that cannot be read, or that names too many nodes."""


@dataclass(frozen=True)
class NodeQuery:
    hosts: list[str] | None = None  # a host list, expanded
    state: str | None = None  # a part of the Slurm state, any case
    unhealthy: bool = False  # health other than OK
    limit: int | None = None
    after: str | None = None  # the page starts after this node, in natural order

    @classmethod
    def asked(cls, wanted: NodeFilter) -> NodeQuery:
        """The query of ``GET /v1/nodes``; :class:`BadHostList` for its host list."""
        names = None if wanted.nodes is None else expand_hosts(wanted.nodes)
        return cls(names, wanted.state, wanted.unhealthy, wanted.limit, wanted.after)


class NodePage(NamedTuple):
    nodes: list[NodeView]
    next_after: str | None  # more follow: the next page starts after this node

    def headers(self) -> dict[str, str]:
        return {NEXT_AFTER: self.next_after} if self.next_after else {}


def expand_hosts(expression: str) -> list[str]:
    """The node names of a Slurm host list (``gpu[001-128],login1``)."""
    if _count(expression) > MAX_NODES:
        raise BadHostList(f"names more than {MAX_NODES} nodes")
    try:
        return expand(expression)
    except SlurmParseError as exc:
        raise BadHostList(str(exc)) from None


def page(s: Session, query: NodeQuery, now: datetime, stale_after_s: float) -> NodePage:
    keys = sorted(sort_key(n) for n in nodelist.names(s, state=query.state, among=query.hosts))
    start = 0 if query.after is None else bisect_right(keys, sort_key(query.after))
    names = [name for _, name in keys[start:]]
    if query.unhealthy:
        return _unhealthy(s, names, query.limit, now, stale_after_s)
    shown = names if query.limit is None else names[: query.limit]
    more = len(names) > len(shown)
    return NodePage(judged(s, shown, now, stale_after_s), shown[-1] if more else None)


def _unhealthy(
    s: Session, names: Sequence[str], limit: int | None, now: datetime, stale_after_s: float
) -> NodePage:
    """Judge ``names`` a chunk at a time until more than ``limit`` are unhealthy."""
    found: list[NodeView] = []
    for chunk in _chunks(names, SCAN):
        found += [v for v in judged(s, chunk, now, stale_after_s) if v.health is not Health.OK]
        if limit is not None and len(found) > limit:
            return NodePage(found[:limit], found[limit - 1].name)
    return NodePage(found, None)


def judged(s: Session, names: Sequence[str], now: datetime, stale_after_s: float) -> list[NodeView]:
    """The views of ``names`` (stored nodes), in that order."""
    rows = nodelist.briefs(s, names)
    opened = nodelist.open_incidents(s, names)
    ages = {n: _age(rows[n], now) for n in names if n in rows}
    decided = {n: _decided(opened.get(n), ages[n], stale_after_s, rows[n].worst) for n in ages}
    left = [n for n, health in decided.items() if health is None]
    texts = nodelist.results_text(s, left) if left else {}
    out = []
    for name in names:
        if name not in rows:
            continue
        health = decided[name] or results_health(texts.get(name))
        out.append(_view(rows[name], opened.get(name), ages[name], health))
    return out


def results_health(text: str | None) -> Health:
    """The worst of a node's latest results (stored JSON text): FAIL, WARN or OK."""
    if text is None or not any(word in text for word in _WORRYING):
        return Health.OK
    results: Any = json.loads(text)
    return listed_health(r.get("status") for r in results or () if isinstance(r, dict))


def order(names: Sequence[str]) -> list[str]:
    return sorted(names, key=sort_key)


def sort_key(name: str) -> tuple[list[tuple[int, int | str]], str]:
    """``node2`` before ``node10``; the name itself decides between ``n01`` and ``n1``."""
    return natural_key(name), name


def natural_key(name: str) -> list[tuple[int, int | str]]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", name) if p]


def _decided(
    incident: OpenIncident | None, age_s: float | None, stale_s: float, worst: str | None
) -> Health | None:
    """Health without parsing the node's results: FAIL with an open hardware incident,
    UNKNOWN if it never reported, STALE if its last report is too old, else the worst
    of its results as stored beside them; None: only its results can tell."""
    if incident is not None and incident.hardware:
        return Health.FAIL
    if age_s is None:
        return Health.UNKNOWN
    if age_s > stale_s:
        return Health.STALE
    return Health(worst) if worst in _WORST else None


def _view(
    row: NodeBrief, incident: OpenIncident | None, age: float | None, health: Health
) -> NodeView:
    return NodeView(
        name=row.name,
        slurm_state=row.slurm_state,
        slurm_reason=row.slurm_reason,
        drained_by_hpresil=row.drained_by_hpresil,
        health=health,
        open_incident=incident.id if incident else None,
        last_report_at=row.last_report_at,
        last_report_age_s=age,
        gpus=row.gpus,
        held_by=row.hold_by,
    )


def _age(row: NodeBrief, now: datetime) -> float | None:
    return (now - row.last_report_at).total_seconds() if row.last_report_at else None


def _chunks(names: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(names), size):
        yield names[i : i + size]


def _count(expression: str) -> int:
    """How many names ``expression`` expands to, without expanding it."""
    total, depth, start = 0, 0, 0
    for i, ch in enumerate(expression + ","):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            total += _count_one(expression[start:i].strip())
            start = i + 1
    return total


def _count_one(part: str) -> int:
    m = _RANGES.match(part)
    if not m:
        return 1 if part else 0
    size = 0
    for item in m.group(2).split(","):
        lo, _, hi = item.partition("-")
        if not lo.isdigit() or not (hi or lo).isdigit():
            return 0  # expand() says what is wrong
        size += max(int(hi or lo) - int(lo) + 1, 0)
    return size * max(_count_one(m.group(3)), 1)
