"""Opening the database, migrating it, and the two kinds of transaction.

SQLite is set up on every connection for a daemon with several threads: WAL,
``busy_timeout=5000``, ``synchronous=NORMAL``, foreign keys on; write transactions
start with ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of
failing on a lock upgrade. A PostgreSQL URL gets none of that and needs none.

A damaged database is told from a busy one. ``migrate()`` runs SQLite's
``PRAGMA quick_check`` first (given up with a warning after ``QUICK_CHECK_S``) and
refuses a damaged file; at run time SQLite's ``SQLITE_CORRUPT``/``SQLITE_NOTADB`` and
PostgreSQL's SQLSTATE class XX raise :class:`DatabaseCorrupt`, logged loudly, while
lock contention stays SQLAlchemy's ``OperationalError``. A full disk
(:func:`is_disk_full`) also stays an ``OperationalError``: nothing is damaged and the
same write succeeds once there is room.

A PostgreSQL server that goes away is waited for, never trusted blindly: every pooled
connection is pinged before use (one the server closed is replaced), a new connection
gives up after ``PG_CONNECT_TIMEOUT_S`` and a silent one (host down, network cut) is
ended by TCP keepalives within seconds, not TCP's minutes. :func:`is_unavailable` tells
such an error (the API answers 503 and agents keep their reports) from a busy one. Once
the server could not be reached, one transaction per ``RETRY_S`` asks it again and the
others fail at once with the same error: a silent server costs one connect timeout per
``RETRY_S``, not one per request (each holding a thread of the API).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from hpresil.errors import DatabaseCorrupt, HpresilError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
_WRITE = "hpresil_write"
_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)
QUICK_CHECK_S = 60.0  # a bigger database is checked this long, then trusted
_SQLITE_CORRUPT = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB (primary result codes)
_CORRUPT_TEXT = ("database disk image is malformed", "file is not a database")
_SQLITE_FULL = 13  # SQLITE_FULL: "database or disk is full"
_PG_DISK_FULL = "53100"  # disk_full
_SIDE_FILES = ("-wal", "-shm", "-journal")  # SQLite's files beside the database
MIGRATING = 0x6870_7265_7369_6C01  # advisory lock held while migrating (PostgreSQL)
# libpq's settings for every PostgreSQL connection (a URL's own query wins): under the
# agents' request timeout (5 s) a request that cannot reach the server answers 503
PG_CONNECT_TIMEOUT_S = 3
PG_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 3, "keepalives_interval": 1}
# A session idle inside a transaction this long is ended by the server, its locks with
# it: hpresil's transactions last milliseconds, so such a session's process is stalled
# (paused, a frozen VM) and would otherwise hold up the others' reports of its rows
# while its host answers TCP. The leader's lock has a session of its own, autocommit.
PG_STALLED_TX_MS = 10_000
PG_CLIENT = {
    **PG_KEEPALIVES,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,  # ms: data unacknowledged this long ends the connection
    "connect_timeout": PG_CONNECT_TIMEOUT_S,
    "options": f"-c idle_in_transaction_session_timeout={PG_STALLED_TX_MS}",
}
POOL_TIMEOUT_S = 5.0  # a request waits this long for a pooled connection, then 503
RETRY_S = 1.0  # after the server could not be reached, it is asked again this often
_LIBPQ = ("psycopg", "psycopg2")  # the drivers that take libpq's settings
# SQLSTATE classes of a server that cannot serve any request now: connection exception,
# operator intervention (shutting down, starting up, restarted), too many connections
_PG_UNAVAILABLE = ("08", "57P", "53300")


class Store:
    """The controller's database: ``write()`` and ``read()`` give a session inside
    one transaction, committed on success and rolled back on an exception."""

    def __init__(self, engine: Engine, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self._outage = Outage(monotonic)
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
        with self._outage.guard(), self._corruption(), self._writer.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._outage.guard(), self._corruption(), self._reader.begin() as session:
            yield session

    def migrate(self) -> None:
        """Check that the database is sound, then bring the schema to the newest revision
        (on PostgreSQL one controller at a time: replicas may start together)."""
        self.check()
        with (
            _one_line(self.engine.url.render_as_string()),
            self.engine.execution_options(**{_WRITE: True}).begin() as conn,
        ):
            if conn.dialect.name == "postgresql":  # replicas starting at once: one by one
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATING})
            command.upgrade(alembic_config(conn), "head")

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        """Return if the database answers now; raise SQLAlchemy's error if not."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def check(self, limit_s: float = QUICK_CHECK_S) -> None:
        """Raise :class:`DatabaseCorrupt` if SQLite's quick check finds damage within
        ``limit_s``; PostgreSQL checks its own pages as it reads them."""
        if self.engine.dialect.name != "sqlite":
            return
        url = self.engine.url.render_as_string(hide_password=False)
        with _one_line(url), self._corruption(), self.engine.connect() as conn:
            found = _quick_check(conn.connection.dbapi_connection, limit_s)
        if found is not None and found != "ok":
            raise self._corrupt(f"integrity check failed: {' '.join(found.split())}")

    @contextmanager
    def _corruption(self) -> Iterator[None]:
        try:
            yield
        except DBAPIError as exc:
            if not is_corrupt(exc):
                raise
            raise self._corrupt(first_line(exc)) from exc

    def _corrupt(self, what: str) -> DatabaseCorrupt:
        error = DatabaseCorrupt(
            f"database {self._where()} is corrupt ({what}); restore it from a backup"
            " or move it aside"
        )
        log.critical("%s", error)
        return error

    def _where(self) -> str:
        url = self.engine.url
        if url.get_backend_name() == "sqlite" and url.database:
            return str(Path(url.database).expanduser())
        return url.render_as_string(hide_password=True)


class Outage:
    """Whether the server could not be reached: while it could not, one caller per
    ``RETRY_S`` asks it again and the others get that failure at once."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._mutex = threading.Lock()
        self._why: str | None = None  # the last failure's first line, while it lasts
        self._next_try = 0.0

    @contextmanager
    def guard(self) -> Iterator[None]:
        self._admit()
        try:
            yield
        except DBAPIError as exc:
            if is_unavailable(exc):
                with self._mutex:
                    self._why = first_line(exc)
                    self._next_try = self._monotonic() + RETRY_S
            raise
        self._why = None

    def _admit(self) -> None:
        with self._mutex:
            why, now = self._why, self._monotonic()
            if why is None:
                return
            if now >= self._next_try:
                self._next_try = now + RETRY_S  # this caller asks; the others wait for it
                return
        gone = ConnectionError(f"{why} (asked again within {RETRY_S:g} s)")
        raise OperationalError(None, None, gone)


def is_corrupt(exc: BaseException) -> bool:
    """Whether a database error says the data is damaged (not busy, not down)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith("XX")
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if isinstance(code, int):
            return code & 0xFF in _SQLITE_CORRUPT
        return any(text in str(orig) for text in _CORRUPT_TEXT)
    return False


def is_disk_full(exc: BaseException) -> bool:
    """Whether a database error says its disk is full (SQLITE_FULL, SQLSTATE 53100)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate == _PG_DISK_FULL
    if isinstance(orig, sqlite3.Error):
        return getattr(orig, "sqlite_errorcode", None) == _SQLITE_FULL
    return False


def is_unavailable(exc: BaseException) -> bool:
    """Whether a database error says the server cannot serve anything now (refused,
    closed, gone silent, shutting down or starting up, out of connections): not the
    request's fault, and the same request succeeds once the server is back. SQLite's
    errors (locked, full) and a pool with no connection free are not of this kind."""
    if not isinstance(exc, DBAPIError) or isinstance(exc.orig, sqlite3.Error):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith(_PG_UNAVAILABLE)
    return isinstance(exc, OperationalError)  # the driver's own: could not connect, lost


def _quick_check(dbapi_conn: Any, limit_s: float) -> str | None:
    """The first line of ``PRAGMA quick_check``; None when given up after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    dbapi_conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
    try:
        row = dbapi_conn.execute("PRAGMA quick_check(1)").fetchone()
    except sqlite3.OperationalError as exc:
        if "interrupted" not in str(exc):
            raise
        log.warning("database integrity check given up after %g s: not finished", limit_s)
        return None
    finally:
        dbapi_conn.set_progress_handler(None, 0)
    return str(row[0]) if row else "no answer"


def first_line(exc: BaseException) -> str:
    """The first line of what the database driver said (the error, for a log line)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        libpq = parsed.get_driver_name() in _LIBPQ
        args = {k: v for k, v in PG_CLIENT.items() if libpq and k not in parsed.query}
        return create_engine(
            parsed, pool_pre_ping=True, pool_timeout=POOL_TIMEOUT_S, connect_args=args
        )
    if parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        _owner_only(path)
    engine = create_engine(parsed)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _owner_only(path: Path) -> None:
    """The ledger names nodes, jobs and users: create the database file 0600 before
    SQLite opens it (SQLite gives the ``-wal`` and ``-shm`` files the database's
    mode), and tighten one an older version left readable by others, with a warning."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except FileExistsError:
        pass
    for file in (path, *(path.with_name(path.name + end) for end in _SIDE_FILES)):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            os.chmod(file, mode & 0o700)
            log.warning(
                "database %s was mode %04o, open to others: now %04o", file, mode, mode & 0o700
            )


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
        raise DatabaseError(f"database {_safe(url)}: {first_line(exc)}") from exc


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
