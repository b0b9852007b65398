"""Reading the stored history back, for ``hpresil policy replay``: the database opened
read-only, the reports in arrival order (streamed), and the incidents, breakers and
nodes that say what hpresil did meanwhile.

Portable SQL only, as :mod:`hpresil.store.repo`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, make_url, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from hpresil.store.db import DatabaseError, Store
from hpresil.store.models import BreakerRow, IncidentRow, NodeRow, ReportRow

STREAM_BATCH = 500  # reports fetched at a time: a month of them never sits in memory


@dataclass(frozen=True)
class StoredReport:
    """One stored report as replay needs it: when it came, from where, what it said."""

    id: int
    received_at: datetime
    node: str
    body: dict[str, Any]


def open_read_only(url: str) -> Store:
    """The database at ``url``, opened so that nothing can be written: SQLite in
    ``mode=ro`` (a missing file is an error, never created), PostgreSQL in read-only
    transactions."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite":
            options = (
                {"postgresql_readonly": True} if parsed.get_backend_name() == "postgresql" else {}
            )
            return Store(create_engine(parsed, pool_pre_ping=True, execution_options=options))
    except (SQLAlchemyError, ImportError) as exc:
        raise DatabaseError(f"database {url}: {exc}") from exc
    if not parsed.database or parsed.database == ":memory:":
        raise DatabaseError(f"database {url}: no file to read")
    path = Path(parsed.database).expanduser()
    if not path.is_file():
        raise DatabaseError(f"database {path}: no such file")

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        conn.isolation_level = None  # SQLAlchemy's BEGIN, below: one snapshot throughout
        return conn

    engine = create_engine("sqlite://", creator=connect)
    event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
    return Store(engine)


def reports_since(s: Session, since: datetime) -> Iterator[StoredReport]:
    """Reports received since ``since``, in arrival order, fetched in batches."""
    query = (
        select(ReportRow.id, ReportRow.received_at, ReportRow.node, ReportRow.body)
        .where(ReportRow.received_at >= since)
        .order_by(ReportRow.id)
        .execution_options(yield_per=STREAM_BATCH)
    )
    for row in s.execute(query):
        yield StoredReport(row.id, row.received_at, row.node, row.body)


def oldest_report(s: Session) -> datetime | None:
    """When the oldest report kept was received (older ones are pruned)."""
    return s.scalar(select(func.min(ReportRow.received_at)))


def incidents_since(s: Session, horizon: datetime) -> Sequence[IncidentRow]:
    """Incidents detected since ``horizon`` or still open then, with their actions and
    shared incidents, oldest first."""
    query = (
        select(IncidentRow)
        .options(selectinload(IncidentRow.actions), selectinload(IncidentRow.shared))
        .where(
            or_(
                IncidentRow.detected_at >= horizon,
                IncidentRow.resolved_at.is_(None),
                IncidentRow.resolved_at >= horizon,
            )
        )
        .order_by(IncidentRow.id)
    )
    return s.scalars(query).all()


def breakers_since(s: Session, horizon: datetime) -> Sequence[BreakerRow]:
    """Breakers tripped since ``horizon`` or still tripped then, oldest first."""
    query = (
        select(BreakerRow)
        .where(
            or_(
                BreakerRow.tripped_at >= horizon,
                BreakerRow.reset_at.is_(None),
                BreakerRow.reset_at >= horizon,
            )
        )
        .order_by(BreakerRow.id)
    )
    return s.scalars(query).all()


def first_seen(s: Session) -> list[datetime]:
    """When each node hpresil knows was first seen, earliest first: the fleet over time."""
    return sorted(s.scalars(select(NodeRow.first_seen_at)))
