"""A heartbeat taken the short way: a node with no open incident whose agent says
nothing failed (no results) only reported, and ran the jobs it says.

Its node's row is read and written as columns (never its results); a heartbeat of a
``seq`` already taken is a duplicate (heartbeats leave no report row to know them by),
one behind it late (the node is seen, nothing else). Anything else, or a node hpresil
never saw, takes :class:`hpresil.controller.ingest.Ingest`'s whole way (None).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from hpresil.api import ReportAck
from hpresil.config import JobsConfig
from hpresil.controller.jobs import ledger
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
    n, i = NodeRow.__table__.c, IncidentRow.__table__.c
    opened = exists().where(i.node == n.name, i.status == OPEN)
    query = select(n.last_seq, n.state_digest, opened.label("opened")).where(n.name == report.node)
    row = s.execute(query.with_for_update(of=NodeRow.__table__)).first()  # its reports in turn
    if row is None or row.opened:
        return None
    last = row.last_seq or 0
    if report.seq == last:
        return DUPLICATE
    late = report.seq < last
    seen = {"last_report_at": now} if late else {"last_report_at": now, "last_seq": report.seq}
    s.execute(update(NodeRow).where(n.name == report.node).values(seen))
    if report.jobs and not late:
        ledger.observe(s, report.node, report.jobs, now, jobs, fresh_s=fresh_s)
    asks = not late and report.digest != row.state_digest
    return ReportAck(accepted=True, duplicate=False, send_state=asks)
