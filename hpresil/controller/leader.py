"""Which controller acts: several replicas on one database, exactly one leader.

Every replica serves the API and takes reports; only the one that holds the
database's leader lock (:mod:`hpresil.store.leader_lock`: a PostgreSQL session-level
advisory lock, or a ``flock`` beside a SQLite file) runs its :class:`Duties`, the
remediation executor and the reconcile loop. The lock is the whole protocol: there is
no lease to expire, no vote, no clock compared; PostgreSQL decides who holds it, and
it holds it for as long as that connection lives.

A :class:`Leader` thread tries for the lock every ``check_s`` while it follows. While
it leads, it asks every ``check_s`` (and at once when its connection has news: a
NOTIFY, or the server closing it) whether it still holds it; the executor asks again
before each action (:meth:`Leader.confirm`). When the answer is no, it stops leading
first (every later ``confirm`` is false), then stops its duties, and tries for the
lock again only once they have ended. A leader killed with ``kill -9`` loses its
session and the lock with it: another replica takes it within ``check_s``.

The database going away (stopped, restarted, out of reach) ends the lock's session
too: the leader steps down and its thread goes on trying every ``check_s`` (each try
bounded by the connection's timeout), and it leads again only once it has taken the
lock again; no error ends the thread.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from typing import Protocol

from hpresil.errors import HpresilError
from hpresil.store.leader_lock import LeaderLock

log = logging.getLogger(__name__)


class Duties(Protocol):
    """What only the leader runs."""

    def start(self) -> None: ...

    def stop(self) -> None:
        """Stop and wait for what runs (bounded)."""

    @property
    def stopped(self) -> bool:
        """Nothing of the last term still runs."""

    @property
    def alive(self) -> bool:
        """Everything started still runs."""


class Leader:
    def __init__(self, lock: LeaderLock, duties: Duties, check_s: float) -> None:
        self._lock = lock
        self._duties = duties
        self._check_s = check_s
        self._leading = False
        self._stopping = threading.Event()
        self._poke_r, self._poke_w = socket.socketpair()  # wakes the thread's select
        self._poke_r.setblocking(False)
        self._poke_w.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="hpresil-leader", daemon=True)

    @property
    def leading(self) -> bool:
        return self._leading

    def confirm(self) -> bool:
        """Whether this replica leads, asked of the lock's keeper now: before an action."""
        if not self._leading:
            return False
        if self._lock.holds():
            return True
        self._poke()  # the thread steps down at once
        return False

    def start(self) -> None:
        """Try once now (a lone controller leads before it serves), then keep trying."""
        self._step()
        if not self._leading:
            log.info("following: %s is held elsewhere", self._lock.describe())
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._poke()
        if self._thread.is_alive():
            self._thread.join(self._check_s + 15)
        if self._leading:
            self._step_down("stopping", logging.INFO)
        self._lock.release()
        self._poke_r.close()
        self._poke_w.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and (self._duties.alive or not self._leading)

    # --- the thread ---
    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wait()
            if self._stopping.is_set():
                return
            try:
                self._step()
            except HpresilError as exc:
                log.error("leader lock: %s", exc)
            except Exception:
                log.exception("leader lock: checking failed")

    def _step(self) -> None:
        if self._leading:
            if not self._lock.holds():
                self._step_down(f"lost {self._lock.describe()}")
        elif self._duties.stopped and self._lock.try_acquire():
            self._leading = True
            log.info("leading: %s; running the executor and reconciler", self._lock.describe())
            self._duties.start()

    def _step_down(self, why: str, level: int = logging.WARNING) -> None:
        self._leading = False  # first: no action passes confirm() from here on
        log.log(level, "no longer leading (%s): stopping the executor and reconciler", why)
        self._duties.stop()
        self._lock.release()

    def _wait(self) -> None:
        watched = [self._poke_r.fileno()]
        sock = self._lock.fileno() if self._leading else None
        if sock is not None:  # a NOTIFY, or the server closing the session
            watched.append(sock)
        try:
            ready, _, _ = select.select(watched, [], [], self._check_s)
        except (OSError, ValueError):  # the lock's socket closed meanwhile (by confirm())
            return  # news: the next step asks the lock
        if watched[0] in ready:
            with contextlib.suppress(OSError):
                self._poke_r.recv(512)

    def _poke(self) -> None:
        with contextlib.suppress(OSError):  # already poked (full), or closed by stop()
            self._poke_w.send(b".")
