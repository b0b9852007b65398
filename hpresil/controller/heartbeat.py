"""A heartbeat taken the short way: a node with no open incident whose agent says
nothing failed (no results) only reported, and ran the jobs it says.

Its node's row is read and written as columns (never its results); a heartbeat of a
``seq`` already taken is a duplicate (heartbeats leave no report row to know them by),
one behind it late (the node is seen, nothing else). Anything else, or a node hpresil
never saw, takes :class:`hpresil.controller.ingest.Ingest`'s whole way (None).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, exists, select, update
from sqlalchemy.orm import Session

from hpresil.api import ReportAck
from hpresil.config import JobsConfig
from hpresil.controller.jobs import ledger
from hpresil.controller.node_state import is_late, taken_already, wants_state
from hpresil.store import serial
from hpresil.store.models import OPEN, IncidentRow, NodeRow
from hpresil.vocab import Report

DUPLICATE = ReportAck(accepted=True, duplicate=True)


def quiet(report: Report) -> bool:
    """Whether ``report`` is a heartbeat saying nothing failed."""
    return report.heartbeat and not report.results


def take(
    s: Session, report: Report, now: datetime, jobs: JobsConfig, *, fresh_s: float
) -> ReportAck | None:
    """Take a :func:`quiet` heartbeat in; None: it needs the whole way."""
    return take_all(s, [report], now, jobs, fresh_s=fresh_s)[0]


def take_all(
    s: Session, reports: Sequence[Report], now: datetime, jobs: JobsConfig, *, fresh_s: float
) -> list[ReportAck | None]:
    """Take :func:`quiet` heartbeats in, in their order, in one transaction (a group
    commit: their nodes' rows read by one statement and written by another); each
    one's answer, None where it needs the whole way. Their nodes are locked in name
    order and their jobs in job order, as :mod:`hpresil.store.serial` wants."""
    names = sorted({r.node for r in reports})
    held = {row.name: row for row in s.execute(_READ, {"nodes": names})}
    last = {name: row.last_seq for name, row in held.items()}
    seen: dict[str, int] = {}
    observing: list[Report] = []
    answers: list[ReportAck | None] = []
    for report in reports:
        row = held.get(report.node)
        if row is None or row.opened:
            answers.append(None)
            continue
        if taken_already(last[report.node], report.seq):
            answers.append(DUPLICATE)
            continue
        late = is_late(last[report.node], report.seq)
        if not late:
            last[report.node] = report.seq
            observing += [report] if report.jobs else []
        seen[report.node] = last[report.node]  # a late one: seen, its seq not taken
        asks = wants_state(report, row.state_digest, late)
        answers.append(ReportAck(accepted=True, duplicate=False, send_state=asks))
    if seen:
        s.execute(_SEEN, [{"node": n, "at": now, "seq": q} for n, q in seen.items()])
    serial.jobs(s, (j.job_id for r in observing for j in r.jobs))
    for report in observing:
        ledger.observe(s, report.node, report.jobs, now, jobs, fresh_s=fresh_s)
    return answers


# built once: a heartbeat's two statements are the controller's most frequent (the
# second run once per batch, as executemany)
_N, _I = NodeRow.__table__.c, IncidentRow.__table__.c
_READ = (
    select(
        _N.name,
        _N.last_seq,
        _N.state_digest,
        exists().where(_I.node == _N.name, _I.status == OPEN).label("opened"),
    )
    .where(_N.name.in_(bindparam("nodes", expanding=True)))
    .order_by(_N.name)
    .with_for_update(of=NodeRow.__table__)  # its reports in turn (PostgreSQL)
)
_SEEN = (  # the table, not the class: a list of parameters is one executemany
    update(cast(Table, NodeRow.__table__))
    .where(_N.name == bindparam("node"))
    .values(last_report_at=bindparam("at"), last_seq=bindparam("seq"))
)
