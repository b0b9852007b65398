"""A heartbeat taken the short way: a node with no open incident whose agent says
nothing failed (no results) only reported, and ran the jobs it says.

Its node's row is read and written as columns (never its results); a heartbeat of a
``seq`` already taken is a duplicate (heartbeats leave no report row to know them by),
one behind it late (the node is seen, nothing else). Anything else, or a node hpresil
never saw, takes :class:`hpresil.controller.ingest.Ingest`'s whole way (None).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.orm import Session

from hpresil.api import ReportAck
from hpresil.config import JobsConfig
from hpresil.controller.jobs import ledger
from hpresil.controller.node_state import is_late, taken_already, wants_state
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
    row = s.execute(_READ, {"node": report.node}).first()
    if row is None or row.opened:
        return None
    if taken_already(row.last_seq, report.seq):
        return DUPLICATE
    late = is_late(row.last_seq, report.seq)
    seq = row.last_seq if late else report.seq
    s.execute(_SEEN, {"node": report.node, "at": now, "seq": seq})
    if report.jobs and not late:
        ledger.observe(s, report.node, report.jobs, now, jobs, fresh_s=fresh_s)
    asks = wants_state(report, row.state_digest, late)
    return ReportAck(accepted=True, duplicate=False, send_state=asks)


# built once: a heartbeat's two statements are the controller's most frequent
_N, _I = NodeRow.__table__.c, IncidentRow.__table__.c
_READ = (
    select(
        _N.last_seq,
        _N.state_digest,
        exists().where(_I.node == _N.name, _I.status == OPEN).label("opened"),
    )
    .where(_N.name == bindparam("node"))
    .with_for_update(of=NodeRow.__table__)  # its reports in turn (PostgreSQL)
)
_SEEN = (
    update(NodeRow)
    .where(_N.name == bindparam("node"))
    .values(last_report_at=bindparam("at"), last_seq=bindparam("seq"))
)
