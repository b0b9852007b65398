"""The service: systemd notification, and a real start and SIGTERM stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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


def test_run_controller_serves_then_stops_on_sigterm(
    tmp_path: Path, notify_socket: socket.socket
) -> None:
    port = _free_port()
    token = write_token(tmp_path / "token")
    (tmp_path / "nobin").mkdir()
    config = tmp_path / "hpresil.toml"
    config.write_text(
        f"""
[controller]
listen_port = {port}
database = "sqlite:///{tmp_path}/state/hpresil.db"
token_file = "{tmp_path}/token"
reconcile_interval_s = 0.2
[slurm]
bin_dir = "{tmp_path}/nobin"
retries = 0
"""
    )
    code = "from hpresil.config import load; from hpresil.controller import run_controller; "
    code += f"run_controller(load({str(config)!r}))"
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    log = tmp_path / "controller.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=out)
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
        if proc.poll() is None:
            proc.kill()
            proc.wait()
