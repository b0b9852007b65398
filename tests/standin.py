"""Stand-in controllers on local ports, for the client's and the Slurm hook's failover
over several controller URLs: one that answers (with a chosen status; over HTTP/1.1
keep-alive if asked), one that takes the connection and hangs up, one that never
answers, a port nobody listens on, and one that answers a connection's first request
and hangs up on its second (a kept connection closed just as a request leaves)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Seen:
    """One request a stand-in received."""

    method: str
    target: str  # the path with its query
    authorization: str
    body: bytes


class Answering:
    """Answers every request with ``status`` and ``answer`` (JSON; ``{"detail": …}``
    for an error) and records it. ``check(seen)`` runs first when set: a request it
    raises on is answered 401 (a credential this controller refuses). ``keepalive``:
    HTTP/1.1, a connection kept for the next request (else HTTP/1.0, one request per
    connection); ``connections`` counts those accepted, ``drop_idle()`` closes the
    kept ones as a controller does when they were idle too long."""

    def __init__(self, status: int = 200, answer: Any = None, *, keepalive: bool = False) -> None:
        self.status, self.answer = status, answer
        self.seen: list[Seen] = []
        self.check: Callable[[Seen], None] | None = None
        self.refused: list[str] = []  # why check refused each request it refused
        self.connections = 0
        self._open: list[socket.socket] = []
        me = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keepalive else "HTTP/1.0"

            def setup(self) -> None:
                super().setup()
                me.connections += 1
                me._open.append(self.connection)

            def do_GET(self) -> None:
                me._serve(self)

            def do_POST(self) -> None:
                me._serve(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        serve = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        serve.start()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        seen = Seen(h.command, h.path, h.headers.get("Authorization", ""), body)
        self.seen.append(seen)
        status, answer = self.status, self.answer
        if self.check is not None:
            try:
                self.check(seen)
            except Exception as exc:
                status = 401
                self.refused.append(str(exc))
        if status >= 400:
            answer = {"detail": f"answer {status}"}
        payload = json.dumps(answer).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    def drop_idle(self) -> None:
        for conn in self._open:
            conn.shutdown(socket.SHUT_RDWR)
        self._open.clear()
        time.sleep(0.05)  # the FIN reaches the client

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Listening:
    """A raw listening socket on a free local port; each accepted connection goes to
    :meth:`_take`. ``close()``: no new connection is taken (a blocked accept is woken)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            self._take(conn)

    def _take(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


class Silent(_Listening):
    """Takes connections (``hangup``: closes each at once, unanswered; else keeps it
    open and never answers, so the client times out) and counts them."""

    def __init__(self, *, hangup: bool) -> None:
        self.connections = 0
        self.hangup = hangup
        self._held: list[socket.socket] = []
        super().__init__()

    def _take(self, conn: socket.socket) -> None:
        self.connections += 1
        if self.hangup:
            conn.recv(65536)
            conn.close()
        else:
            self._held.append(conn)

    def close(self) -> None:
        super().close()
        for conn in self._held:
            conn.close()


class Closed:
    """A port bound but not listening, held until closed: connecting is refused."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def close(self) -> None:
        self._sock.close()


class SecondHangsUp(_Listening):
    """Answers the first request on each connection with 200 and ``answer`` (HTTP/1.1,
    the connection kept), then reads the next and closes without an answer: the
    controller that closed a kept connection just as the request left. ``requests``:
    each request line it read, answered or not; ``authorizations``: their
    Authorization headers."""

    def __init__(self, answer: Any) -> None:
        self.requests: list[str] = []
        self.authorizations: list[str] = []
        self._payload = json.dumps(answer).encode()
        super().__init__()

    def _take(self, conn: socket.socket) -> None:
        threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as rfile:
            for answered in (True, False):
                line = rfile.readline().decode().strip()
                if not line:
                    return  # the client closed it
                headers = {}
                while (header := rfile.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    headers[name.lower()] = value.strip()
                rfile.read(int(headers.get("content-length", 0)))
                self.requests.append(line)
                self.authorizations.append(headers.get("authorization", ""))
                if not answered:
                    return
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(self._payload)}\r\n\r\n"
                conn.sendall(head.encode() + self._payload)
