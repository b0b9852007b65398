"""The leader's lock: which of the controllers sharing one database runs the actions.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock(KEY)``) taken on a
connection of its own, kept open for as long as this process leads. The server alone
decides who holds it, and releases it when that session ends: the process killed (the
kernel closes its socket), ``pg_terminate_backend``, the server restarted, or the
leader's host gone (the session's TCP keepalives, 3 s idle then 3 probes 1 s apart, end
it). A process that is only paused (SIGSTOP) keeps its socket, so its session and the
lock: no other process can take it meanwhile. :meth:`PgLock.holds` asks the server, on
that same connection, whether this session still holds it (``pg_locks``); any error on
the connection answers no and closes it, and only :meth:`PgLock.try_acquire` opens a
new one: a leader whose session ended (the server stopped or restarted) leads again
only once it has taken the lock again. While the server is away the same error is
logged once, and its return once. While it leads, the connection also LISTENs on
``CHANNEL``: another controller that queued an action (:func:`nudge`) wakes the leader's
executor at once.

SQLite has one controller per database file: an exclusive ``flock`` on
``<database>.lock`` beside it, held while the process lives (the kernel drops it when
the process dies), so a second controller on the same file never leads while the first
runs. The file holds the leader's pid; never delete it while a controller runs. An
in-memory database is one process's own: always held.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError

from hpresil.errors import HpresilError
from hpresil.store.db import PG_CLIENT, Store

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

KEY = 0x6870_7265_7369_6C00  # b"hpresil\0": the advisory lock's key, within one database
CHANNEL = "hpresil_actions"  # NOTIFY: an action was queued
_HOLDS = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid() AND classid = %s::oid AND objid = %s::oid AND objsubid = 1"
)
_SERVER = ("tcp_keepalives_idle = 3", "tcp_keepalives_interval = 1", "tcp_keepalives_count = 3")


class LeaderLock(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if no one holds it; never waits."""

    def holds(self) -> bool:
        """Whether this process still holds the lock (asked of whoever keeps it)."""

    def release(self) -> None: ...

    def fileno(self) -> int | None:
        """A socket that becomes readable when the lock's keeper has news."""

    def describe(self) -> str: ...


def leader_lock(store: Store, notified: Callable[[], None]) -> LeaderLock:
    """The lock for ``store``'s database; ``notified`` runs when :func:`nudge` is called
    anywhere while this process leads (PostgreSQL only)."""
    url = store.engine.url
    if url.get_backend_name() == "postgresql":
        return PgLock(url.render_as_string(hide_password=False), notified)
    if url.database and url.database != ":memory:":
        path = Path(url.database).expanduser()
        return FileLock(path.with_name(path.name + ".lock"))
    return Unshared()


def nudge(store: Store) -> None:
    """Tell the leader, wherever it runs, that an action was queued (PostgreSQL)."""
    if store.engine.url.get_backend_name() != "postgresql":
        return
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
            conn.commit()
    except SQLAlchemyError as exc:  # the leader finds the action on its next look
        log.warning("could not wake the leader: %s", str(exc).splitlines()[0])


class PgLock:
    def __init__(self, url: str, notified: Callable[[], None]) -> None:
        self._url = url
        self._notified = notified
        self._conn: psycopg.Connection[Any] | None = None
        self._mutex = threading.Lock()  # the leader's thread and the executor share it
        self._failing: str | None = None  # the connection's error, told once

    def try_acquire(self) -> bool:
        import psycopg

        with self._mutex:
            try:
                conn = self._connection()
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (KEY,)).fetchone()
                if not (row and row[0]):
                    return False
                conn.execute(f"LISTEN {CHANNEL}")
                return True
            except psycopg.Error as exc:
                self._drop(exc)
                return False

    def holds(self) -> bool:
        import psycopg

        with self._mutex:
            if self._conn is None:
                return False
            try:
                row = self._conn.execute(_HOLDS, (KEY >> 32, KEY & 0xFFFF_FFFF)).fetchone()
            except psycopg.Error as exc:
                self._drop(exc)
                return False
            held = bool(row and row[0])
            if not held:  # cannot happen while the session lives; start afresh
                self._drop(None)
            return held

    def release(self) -> None:
        with self._mutex:
            self._drop(None)

    def fileno(self) -> int | None:
        import psycopg

        conn = self._conn
        try:
            return None if conn is None else conn.fileno()
        except psycopg.Error:  # lost: the next holds() says so
            return None

    def describe(self) -> str:
        return f"advisory lock {KEY:#x} on {self._where()}"

    def _where(self) -> str:
        return make_url(self._url).render_as_string(hide_password=True)

    def _connection(self) -> psycopg.Connection[Any]:
        import psycopg

        if self._conn is None or self._conn.closed:
            url = make_url(self._url).set(drivername="postgresql+psycopg")
            _, params = create_engine(url).dialect.create_connect_args(url)
            params.pop("context", None)  # SQLAlchemy's adapters: not needed here
            conn = psycopg.connect(**{**PG_CLIENT, **params}, autocommit=True)
            for setting in _SERVER:  # the server ends the session of a host gone silent
                conn.execute(f"SET {setting}")
            conn.add_notify_handler(lambda _n: self._notified())
            self._conn = conn
            if self._failing is not None:
                log.info("leader lock connection: %s answers again", self._where())
                self._failing = None
        return self._conn

    def _drop(self, exc: Exception | None) -> None:
        if exc is not None:
            line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            tell = log.warning if line != self._failing else log.debug  # each try: not news
            tell("leader lock connection: %s", line)
            self._failing = line
        if self._conn is not None:
            self._conn.close()  # the server releases the lock with the session
            self._conn = None


class FileLock:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return self.holds()
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise HpresilError(f"leader lock {self._path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        if not self.holds():  # replaced between our open and our lock: not ours
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return True

    def holds(self) -> bool:
        """Held while our descriptor is open and still the file at the path."""
        if self._fd is None:
            return False
        try:
            same = os.path.samestat(os.fstat(self._fd), os.stat(self._path))
        except OSError:
            same = False
        if not same:
            self.release()
        return same

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the kernel drops the flock with the last descriptor
            self._fd = None

    def fileno(self) -> int | None:
        return None

    def describe(self) -> str:
        try:
            pid = self._path.read_text().strip()
        except OSError:
            pid = ""
        return f"lock file {self._path}" + (f" (pid {pid})" if pid else "")


class Unshared:
    """An in-memory database: no other process can see it."""

    def try_acquire(self) -> bool:
        return True

    def holds(self) -> bool:
        return True

    def release(self) -> None:
        pass

    def fileno(self) -> int | None:
        return None

    def describe(self) -> str:
        return "an in-memory database"
