"""Leaders in processes of their own: paused with SIGSTOP, killed with SIGKILL, two real
controllers on one database (SQLite and PostgreSQL), and replicas migrating at once."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from hpresil.auth import write_token
from hpresil.store import Store
from hpresil.store.db import MIGRATING
from tests.unit.controller.contender import CHECK_S, Contender, contender, until

__all__ = ["contender"]  # the fixture

ROOT = Path(__file__).resolve().parents[3]


class Child:
    """A contender in a process of its own: asked, it says whether it leads."""

    def __init__(self, url: str) -> None:
        argv = [sys.executable, "-m", "tests.unit.controller.contender", url]
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def leads(self, limit_s: float = 10.0) -> bool:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("?\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], limit_s)
        assert ready, "the contender did not answer"
        return self.proc.stdout.readline().strip() == "True"

    def end(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def child(store: Store, db_url: str) -> Iterator[Child]:
    """A contender in a process of its own, leading ``store``'s database."""
    found = Child(db_url)
    try:
        assert until(found.leads), "the child never led"
        yield found
    finally:
        found.end()


def test_a_paused_leader_keeps_leading_and_no_one_else_leads(
    child: Child, contender: Contender
) -> None:
    os.kill(child.proc.pid, signal.SIGSTOP)
    try:
        other, duties = contender()
        for _ in range(30):  # paused for thirty of the other's checks: no lease runs out
            assert not other.leading and not duties.running
            time.sleep(CHECK_S)
    finally:
        os.kill(child.proc.pid, signal.SIGCONT)
    assert child.leads()  # resumed, it still holds the lock ...
    assert not other.leading and not other.confirm()  # ... and it alone


def test_a_killed_leader_is_replaced_within_ten_seconds(child: Child, contender: Contender) -> None:
    other, duties = contender()
    assert not other.leading
    child.proc.kill()  # SIGKILL: no clean stop, the kernel closes what it held
    assert until(lambda: other.leading and duties.running, limit_s=10.0)
    assert other.confirm()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def controller_config(tmp_path: Path, name: str, db_url: str, more: str = "") -> tuple[Path, int]:
    """A controller's configuration on a free port, the token in ``tmp_path``, no Slurm
    commands (an empty ``bin_dir``), and ``more`` TOML; (its file, the port)."""
    port = _free_port()
    (tmp_path / "nobin").mkdir(exist_ok=True)
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f"""
[controller]
listen_port = {port}
database = "{db_url}"
token_file = "{tmp_path}/token"
leader_check_s = 0.2
[slurm]
bin_dir = "{tmp_path}/nobin"
retries = 0
{more}"""
    )
    return config, port


def _controller(tmp_path: Path, name: str, db_url: str) -> tuple[subprocess.Popen[bytes], str]:
    config, port = controller_config(tmp_path, name, db_url)
    code = "from hpresil.config import load; from hpresil.controller import run_controller; "
    code += f"run_controller(load({str(config)!r}))"
    log = (tmp_path / f"{name}.log").open("w")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=log)
    return proc, f"http://127.0.0.1:{port}/healthz"


def _health(url: str) -> dict[str, bool] | None:
    try:
        found: dict[str, bool] = httpx.get(url, timeout=2).json()
    except httpx.HTTPError:
        return None
    return found


def test_two_controllers_on_one_database_one_leads_then_the_other(
    tmp_path: Path, db_url: str, store: Store
) -> None:
    write_token(tmp_path / "token")
    first, first_url = _controller(tmp_path, "first", db_url)
    second = None
    try:
        assert until(lambda: _health(first_url) == {"ok": True, "leader": True})
        second, second_url = _controller(tmp_path, "second", db_url)
        assert until(lambda: _health(second_url) is not None)
        assert _health(second_url) == {"ok": True, "leader": False}  # serves, does not lead

        first.kill()
        first.wait(10)
        assert until(lambda: _health(second_url) == {"ok": True, "leader": True}, limit_s=10.0)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_replicas_starting_together_migrate_one_by_one(db_url: str) -> None:
    """Held here, the migration lock keeps two starting controllers waiting on it (an
    empty database); let go, each migrates in turn and none fails on the other's tables."""
    engine = create_engine(db_url, isolation_level="AUTOCOMMIT")
    waiting = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND classid = :high AND objid = :low"
    )
    key = {"high": MIGRATING >> 32, "low": MIGRATING & 0xFFFF_FFFF}
    code = f"from hpresil.store import Store; Store.open({db_url!r}).migrate()"
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATING})
        starting = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
        try:
            assert until(lambda: conn.execute(waiting, key).scalar() == 2, limit_s=30.0)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATING})
            codes = [proc.wait(60) for proc in starting]
    engine.dispose()
    assert codes == [0, 0]
