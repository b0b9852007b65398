"""What the controller's services raise for a request that cannot be served; the
HTTP layer maps each to a status code with a one-line detail.

The database's own errors are answered here (:func:`add_database_handlers`): a server
that cannot serve now (stopped, restarting, out of reach: :func:`is_unavailable`)
answers 503 ``database unavailable; try again`` to every request, and an agent keeps
its report spooled and sends it again; a busy database (SQLite locked) and a full disk
answer 503 too, a damaged one 500. An outage is logged once per ``QUIET_S`` with the
count of requests answered meanwhile, not once per request; ``GET /healthz`` asks the
database each time and answers 503 ``{"ok": false, ...}`` while it does not answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hpresil.errors import DatabaseCorrupt, HpresilError
from hpresil.store import Store
from hpresil.store.db import first_line, is_disk_full, is_unavailable

log = logging.getLogger(__name__)

QUIET_S = 10.0  # the same database trouble is logged at most this often
UNAVAILABLE = "database unavailable; try again"


class NotFound(HpresilError):
    """No such node or incident (404)."""


class Conflict(HpresilError):
    """The request goes against a rule hpresil keeps, e.g. resuming a node that
    someone else drained (409)."""


class Unhealthy(HpresilError):
    """This replica cannot serve now: ``GET /healthz`` answers 503, ``"ok": false``."""


def check_database(store: Store) -> None:
    """Raise :class:`Unhealthy` unless ``store``'s database answers now."""
    try:
        store.ping()
    except SQLAlchemyError as exc:
        log.debug("health: database: %s", first_line(exc))
        raise Unhealthy(UNAVAILABLE) from exc


def add_database_handlers(app: FastAPI, *, monotonic: Callable[[], float] = time.monotonic) -> None:
    answers = DatabaseErrors(monotonic)
    for kind in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(kind, answers.failed)
    app.add_exception_handler(DatabaseCorrupt, answers.corrupt)
    app.add_exception_handler(Unhealthy, answers.unhealthy)


class DatabaseErrors:
    """The answers to a request the database failed, and their log lines."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._mutex = threading.Lock()
        self._last: tuple[str, float] | None = None  # what was logged last, and when
        self._quiet = 0  # requests answered alike since then, not logged

    async def failed(self, request: Request, exc: Exception) -> JSONResponse:
        where = f"{request.method} {request.url.path}"
        if is_disk_full(exc):  # agents keep their reports and send them again
            log.error("%s: database disk full: %s", where, first_line(exc))
            return detail(503, "database disk full; try again once there is room")
        if is_unavailable(exc):
            self._tell("database unavailable", first_line(exc), where)
            return detail(503, UNAVAILABLE)
        if isinstance(exc, (OperationalError, PoolTimeout)):  # locked; every connection in use
            self._tell("database busy", first_line(exc), where)
            return detail(503, "database busy; try again")
        raise exc  # not about the connection: a bug, answered 500 like any other

    async def corrupt(self, request: Request, exc: Exception) -> JSONResponse:
        log.critical("%s %s: %s", request.method, request.url.path, exc)
        return detail(500, "database corrupt; see the controller log")

    async def unhealthy(self, request: Request, exc: Exception) -> JSONResponse:
        leads = getattr(request.app.state, "leads", None)  # set by the controller's service
        body = {"ok": False} if leads is None else {"ok": False, "leader": bool(leads())}
        return JSONResponse({**body, "detail": str(exc)}, status_code=503)

    def _tell(self, what: str, why: str, where: str) -> None:
        """Log ``what`` happened, unless it was the last thing logged, under ``QUIET_S``
        ago (whatever the driver said this time)."""
        now = self._monotonic()
        with self._mutex:
            last = self._last
            if last is not None and last[0] == what and now - last[1] < QUIET_S:
                self._quiet += 1
                return
            quiet, self._quiet, self._last = self._quiet, 0, (what, now)
        more = f" ({quiet} more requests answered 503 since the last line)" if quiet else ""
        log.warning("%s: %s: %s%s", where, what, why, more)


def detail(status: int, text: str) -> JSONResponse:
    return JSONResponse({"detail": " ".join(text.split())}, status_code=status)
