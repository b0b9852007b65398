"""A real HTTP endpoint that records the JSON events hpresil posts to its webhook."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Webhook:
    """Serves on a free local port; ``status`` is what it answers (200: the event is
    recorded; anything else: refused, as a webhook that is down)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.status == 200:
                    hook.events.append(json.loads(body))
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hpresil"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kinds(self) -> list[tuple[str, int]]:
        return [(e["event"], e["job_id"]) for e in self.events]

    def close(self) -> None:
        self.server.shutdown()
