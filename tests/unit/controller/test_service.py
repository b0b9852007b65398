"""The service: systemd notification, and a real start and SIGTERM stop."""

from __future__ import annotations

import http.client
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hpresil.auth import write_token
from hpresil.controller.service import Notifier
from hpresil.systemd import sd_notify, watchdog_interval


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(20)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_sd_notify_sends_to_the_socket(notify_socket: socket.socket) -> None:
    assert sd_notify("READY=1")
    assert notify_socket.recv(64) == b"READY=1"


def test_sd_notify_without_systemd_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not sd_notify("READY=1")


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    assert watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # the watchdog is for another process
    assert watchdog_interval() is None


class _Server:
    started = True


def test_notifier_readies_then_pets_only_while_healthy(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # pet every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    healthy = [True]
    notifier = Notifier(_Server(), lambda: healthy[0])  # type: ignore[arg-type]
    notifier.start()
    try:
        assert notify_socket.recv(64) == b"READY=1"
        assert notify_socket.recv(64) == b"WATCHDOG=1"
        healthy[0] = False
        time.sleep(0.15)
        notify_socket.settimeout(0.3)
        with pytest.raises(TimeoutError):
            while True:
                notify_socket.recv(64)
    finally:
        notifier.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _controller_config(tmp_path: Path, port: int, extra: str = "") -> Path:
    (tmp_path / "nobin").mkdir(exist_ok=True)
    config = tmp_path / "hpresil.toml"
    config.write_text(
        f"""
[controller]
listen_port = {port}
database = "sqlite:///{tmp_path}/state/hpresil.db"
token_file = "{tmp_path}/token"
reconcile_interval_s = 0.2
{extra}
[slurm]
bin_dir = "{tmp_path}/nobin"
retries = 0
"""
    )
    return config


def _start(tmp_path: Path, config: Path, **popen: Any) -> subprocess.Popen[bytes]:
    code = "from hpresil.config import load; from hpresil.controller import run_controller; "
    code += f"run_controller(load({str(config)!r}))"
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    with (tmp_path / "controller.log").open("w") as out:
        return subprocess.Popen([sys.executable, "-c", code], env=env, stderr=out, **popen)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_run_controller_serves_then_stops_on_sigterm(
    tmp_path: Path, notify_socket: socket.socket
) -> None:
    port = _free_port()
    token = write_token(tmp_path / "token")
    proc = _start(tmp_path, _controller_config(tmp_path, port))
    log = tmp_path / "controller.log"
    try:
        assert notify_socket.recv(64) == b"READY=1", log.read_text()
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").json() == {"ok": True, "leader": True}
        nodes = httpx.get(f"{base}/v1/nodes", headers={"Authorization": f"Bearer {token}"})
        assert nodes.status_code == 200 and nodes.json() == []  # Slurm unreachable: none yet
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()
        assert notify_socket.recv(64) == b"STOPPING=1"
    finally:
        _stop(proc)


def test_the_controller_keeps_an_idle_connection_for_keepalive_s(
    tmp_path: Path, notify_socket: socket.socket
) -> None:
    port = _free_port()
    write_token(tmp_path / "token")
    proc = _start(tmp_path, _controller_config(tmp_path, port, "keepalive_s = 2"))
    try:
        assert notify_socket.recv(64) == b"READY=1", (tmp_path / "controller.log").read_text()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def healthz() -> None:
            conn.request("GET", "/healthz")
            answer = conn.getresponse()
            body = b'{"ok":true,"leader":true}'
            assert (answer.status, answer.read(), answer.will_close) == (200, body, False)

        healthz()
        sock = conn.sock
        healthz()  # the same connection, two requests
        time.sleep(1.0)
        healthz()  # still kept after 1 s idle
        assert conn.sock is sock
        idle_from = time.monotonic()
        assert sock.recv(1) == b""  # then closed by the controller, idle 2 s
        assert 1.5 < time.monotonic() - idle_from < 8
        conn.close()
    finally:
        _stop(proc)


def test_the_controller_raises_its_open_files_limit_to_the_hard_one(
    tmp_path: Path, notify_socket: socket.socket
) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 512:
        pytest.skip(f"a hard limit of {hard} open files leaves nothing to raise")

    def lowered() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))

    write_token(tmp_path / "token")
    config = _controller_config(tmp_path, _free_port())
    proc = _start(tmp_path, config, preexec_fn=lowered)
    try:
        assert notify_socket.recv(64) == b"READY=1", (tmp_path / "controller.log").read_text()
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
        assert line.split()[3:5] == [str(hard), str(hard)]
    finally:
        _stop(proc)
