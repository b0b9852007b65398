"""What ``GET /v1/nodes`` shows, read as plain rows (Core, not ORM objects) for the
nodes asked for.

A node's ``last_results`` (some 40 KB of JSON on a node of 8 GPUs: every check on
every GPU) is what made a listing of the fleet slow. The listing reads the worst
status kept beside them (``worst``); :func:`results_text` reads them, as the stored
text, only for nodes whose worst status was never worked out (stored before it was).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from hpresil.store.models import OPEN, IncidentRow, NodeResultsRow, NodeRow

CHUNK = 500  # names per IN list


class NodeBrief(NamedTuple):
    name: str
    slurm_state: str | None
    slurm_reason: str | None
    drained_by_hpresil: bool
    last_report_at: datetime | None
    gpus: int | None
    worst: str | None  # of its latest results, as the node list weighs them
    hold_by: str | None  # an operator's hold (``hpresil hold``)


class OpenIncident(NamedTuple):
    id: int
    hardware: bool


def names(s: Session, *, state: str | None = None, among: Sequence[str] | None = None) -> list[str]:
    """Stored node names: all, or those ``among`` the given ones; with ``state``, only
    those whose Slurm state contains it (any case: ``drain`` finds ``MIXED+DRAIN``)."""
    query = select(NodeRow.name)
    if state:
        query = query.where(
            func.lower(NodeRow.slurm_state).contains(state.lower(), autoescape=True)
        )
    if among is None:
        return list(s.scalars(query))
    return [
        name for chunk in _chunks(among) for name in s.scalars(query.where(NodeRow.name.in_(chunk)))
    ]


def briefs(s: Session, nodes: Sequence[str]) -> dict[str, NodeBrief]:
    """The columns the listing shows, for ``nodes``."""
    query = select(
        NodeRow.name,
        NodeRow.slurm_state,
        NodeRow.slurm_reason,
        NodeRow.drained_by_hpresil,
        NodeRow.last_report_at,
        NodeRow.gpus,
        NodeRow.worst,
        NodeRow.hold_by,
    )
    out = {}
    for chunk in _chunks(nodes):
        for row in s.execute(query.where(NodeRow.name.in_(chunk))):
            out[row.name] = NodeBrief(*row)
    return out


def open_incidents(s: Session, nodes: Sequence[str]) -> dict[str, OpenIncident]:
    """The open incident of each of ``nodes`` that has one (a job's is never the node's)."""
    c = IncidentRow.__table__.c
    query = select(c.node, c.id, c.hardware).where(c.status == OPEN, c.job_id.is_(None))
    out = {}
    for chunk in _chunks(nodes):
        for node, number, hardware in s.execute(query.where(c.node.in_(chunk)).order_by(c.id)):
            out[node] = OpenIncident(number, hardware)
    return out


def results_text(s: Session, nodes: Sequence[str]) -> dict[str, str | None]:
    """Each node's latest results as stored: JSON text (None: never stored)."""
    query = select(NodeResultsRow.node, cast(NodeResultsRow.results, Text))
    out: dict[str, str | None] = {}
    for chunk in _chunks(nodes):
        for name, text in s.execute(query.where(NodeResultsRow.node.in_(chunk))):
            out[name] = text
    return out


def _chunks(names: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(names), CHUNK):
        yield names[i : i + CHUNK]
