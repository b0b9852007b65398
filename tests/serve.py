"""An ASGI app served by a real uvicorn from a background thread, for tests that go
through HTTP (the CLI, the Slurm hook, TLS): the port held from bind to shutdown."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def served(app: Any, **settings: Any) -> Iterator[str]:
    """``app``'s base URL (https with ``ssl_certfile``/``ssl_keyfile`` in ``settings``)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # held from here on: no other test can take the port
        port: int = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **settings))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started:
                assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.01)
            scheme = "https" if "ssl_certfile" in settings else "http"
            yield f"{scheme}://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(10)
