"""Kept-alive HTTP connections to the controllers, for :mod:`hpresil.client`.

An agent reports every few seconds for as long as its node runs. A connection of its
own for each report costs both ends a TCP handshake (and with HTTPS a TLS handshake),
and the controller an accept and a protocol object per report: measured with
``scripts/bench/ingest --keepalive``, most of what a heartbeat costs the controller.
So each client keeps one connection per controller URL and sends its requests over it
(HTTP/1.1 keep-alive; ``controller.keepalive_s`` is how long the controller holds one
that is idle).

A kept connection the controller has closed since (it was idle too long, or the
controller restarted) is found before it is used: its socket reads as closed. The
request goes on a new connection. Should the controller close it just as the request
leaves (a race that check cannot see), the request is sent once more on a new
connection when it may be repeated (``repeatable``: a read, or a report, which the
controller takes once by its id); otherwise the failure is the caller's, as any
connection failure. The standard library's ``http.client``, as the rest of the client:
the agent stays light.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Mapping

# What a connection that was kept raises when the other end had closed it: nothing of
# an answer came back. On a new connection the same is a failing controller.
_CLOSED_UNDER_US = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)


class Connections:
    """At most one idle connection kept per controller URL; a request that finds
    none (another thread uses it) opens its own. Thread-safe."""

    def __init__(self, timeout: float, tls: ssl.SSLContext | None) -> None:
        self._timeout = timeout
        self._tls = tls
        self._idle: dict[str, http.client.HTTPConnection] = {}
        self._lock = threading.Lock()

    def exchange(
        self,
        base: str,
        method: str,
        target: str,
        body: bytes | None,
        headers: Callable[[], Mapping[str, str]],
        *,
        repeatable: bool,
    ) -> tuple[int, str, bytes]:
        """Status, reason and body of ``method target`` at ``base``. ``headers`` is
        asked for each try (a credential is good for one request). Raises what
        ``http.client`` raises (``OSError``, ``HTTPException``) when it failed."""
        conn, kept = self._take(base)
        try:
            return self._once(base, conn, method, target, body, headers())
        except _CLOSED_UNDER_US as exc:
            conn.close()
            if not (kept and repeatable):
                raise
            cut = exc
        except BaseException:
            conn.close()
            raise
        conn = self._open(base)  # the kept one was closed under us: once more, afresh
        try:
            return self._once(base, conn, method, target, body, headers())
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ConnectionError(
                f"{_said(cut)} on a kept connection, then {_said(exc)} on a new one"
            ) from exc
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        with self._lock:
            idle, self._idle = list(self._idle.values()), {}
        for conn in idle:
            conn.close()

    def _once(
        self,
        base: str,
        conn: http.client.HTTPConnection,
        method: str,
        target: str,
        body: bytes | None,
        headers: Mapping[str, str],
    ) -> tuple[int, str, bytes]:
        conn.request(method, target, body=body, headers=dict(headers))
        resp = conn.getresponse()
        data = resp.read()
        if resp.will_close:
            conn.close()
        else:
            self._keep(base, conn)
        return resp.status, resp.reason, data

    def _take(self, base: str) -> tuple[http.client.HTTPConnection, bool]:
        """The idle connection to ``base`` if it is still open, else a new one."""
        with self._lock:
            conn = self._idle.pop(base, None)
        if conn is not None and _still_open(conn):
            return conn, True
        if conn is not None:
            conn.close()
        return self._open(base), False

    def _keep(self, base: str, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            spare = self._idle.get(base)
            self._idle[base] = conn
        if spare is not None:
            spare.close()

    def _open(self, base: str) -> http.client.HTTPConnection:
        parts = urllib.parse.urlsplit(base)
        host, port = parts.hostname or "", parts.port
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=self._timeout, context=self._tls)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self._timeout)
        return conn


def _still_open(conn: http.client.HTTPConnection) -> bool:
    """Whether a kept connection can carry a request: its socket is there and has
    nothing to read (an idle HTTP connection that reads is one the other end closed)."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _said(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
