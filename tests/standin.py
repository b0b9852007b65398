"""Stand-in controllers on local ports, for the client's and the Slurm hook's failover
over several controller URLs: one that answers (with a chosen status), one that takes
the connection and hangs up, one that never answers, and a port nobody listens on."""

from __future__ import annotations

import json
import socket
import threading
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
    raises on is answered 401 (a credential this controller refuses)."""

    def __init__(self, status: int = 200, answer: Any = None) -> None:
        self.status, self.answer = status, answer
        self.seen: list[Seen] = []
        self.check: Callable[[Seen], None] | None = None
        self.refused: list[str] = []  # why check refused each request it refused
        me = self

        class Handler(BaseHTTPRequestHandler):
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

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Silent:
    """Takes connections (``hangup``: closes each at once, unanswered; else keeps it
    open and never answers, so the client times out) and counts them."""

    def __init__(self, *, hangup: bool) -> None:
        self.connections = 0
        self.hangup = hangup
        self._held: list[socket.socket] = []
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
            self.connections += 1
            if self.hangup:
                conn.recv(65536)
                conn.close()
            else:
                self._held.append(conn)

    def close(self) -> None:
        self._sock.close()
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
