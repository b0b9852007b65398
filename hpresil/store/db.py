"""Opening the database, migrating it, and the two kinds of transaction.

SQLite is set up on every connection for a daemon with several threads: WAL,
``busy_timeout=5000``, ``synchronous=NORMAL``, foreign keys on; write transactions
start with ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of
failing on a lock upgrade. A PostgreSQL URL gets none of that and needs none.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from hpresil.errors import HpresilError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
_WRITE = "hpresil_write"
_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)


class Store:
    """The controller's database: ``write()`` and ``read()`` give a session inside
    one transaction, committed on success and rolled back on an exception."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = sessionmaker(
            engine.execution_options(**{_WRITE: True}), expire_on_commit=False
        )
        self._reader = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> Store:
        with _one_line(url):
            return cls(make_engine(url))

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._writer.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader.begin() as session:
            yield session

    def migrate(self) -> None:
        """Bring the schema to the newest revision."""
        with (
            _one_line(self.engine.url.render_as_string()),
            self.engine.execution_options(**{_WRITE: True}).begin() as conn,
        ):
            command.upgrade(alembic_config(conn), "head")

    def close(self) -> None:
        self.engine.dispose()


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def alembic_config(conn: Connection) -> AlembicConfig:
    """Alembic settings built in code (no ``alembic.ini``), bound to ``conn``."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


class DatabaseError(HpresilError):
    """The database cannot be opened or migrated (bad URL, no access, server down)."""


@contextmanager
def _one_line(url: str) -> Iterator[None]:
    """Turn what opening or migrating the database raises into one line."""
    try:
        yield
    except (SQLAlchemyError, OSError, ImportError) as exc:  # ImportError: no driver
        where = _safe(url)
        text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise DatabaseError(f"database {where}: {text[0] if text else type(exc).__name__}") from exc


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "(unparseable URL)"


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (see _sqlite_begin)
    cursor = dbapi_conn.cursor()
    try:
        for pragma in _PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
