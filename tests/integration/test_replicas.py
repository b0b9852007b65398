"""Two controllers on one PostgreSQL, on the lab (issue 12): every replica takes
reports, exactly one acts. The agents report to replica B; replica A, started first,
leads. A fault B takes in is drained by A. Then, with a job running: A is paused
(SIGSTOP) and a fault arrives; B stores it but does not lead and nothing is done
while A holds the lock; A is killed (SIGKILL); B leads within 10 s and the node is
drained and the job requeued exactly once."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from lab import VENV, Lab
from scenario import (
    api_get,
    job_field,
    node_state,
    submit_training,
    wait_for,
    wait_running,
)

from tests.integration.faultkit import drained_once, drains, inject_xid79, quiet

A, B = "replica-a", "replica-b"


def _config(lab: Lab, name: str, database: str, port: int) -> Path:
    text = lab.hpresil_conf.read_text()
    text = re.sub(r"(?m)^database = .*$", f'database = "{database}"', text)
    text = re.sub(r"(?m)^listen_port = .*$", f"listen_port = {port}", text)
    path = lab.root / "etc" / f"{name}.toml"
    path.write_text(text)
    return path


def _health(port: int) -> Any:
    url = f"http://127.0.0.1:{port}/healthz"
    with suppress(OSError, ValueError), urllib.request.urlopen(url, timeout=2) as answer:
        return json.loads(answer.read())
    return None


def _signal(lab: Lab, name: str, sig: int) -> None:
    pid = lab._pid(name)
    assert pid is not None, f"{name} is not running"
    os.kill(pid, sig)


def _closed(port: int) -> bool:
    with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return False
    return True


@pytest.fixture
def replicas(clean_lab: Lab, postgres_url: str) -> Iterator[int]:
    """A (leading, on a port of its own) and B (on the lab's port, where the agents
    report), on one fresh PostgreSQL database; the lab's own controller afterwards."""
    lab = clean_lab
    a_port = lab.controller_port + 10
    configs = {
        A: _config(lab, A, postgres_url, a_port),
        B: _config(lab, B, postgres_url, lab.controller_port),
    }
    lab.stop_process("controller")
    wait_for("the lab's controller gone", lambda: _closed(lab.controller_port), 15, 0.2)
    try:
        for name in (A, B):
            argv = [str(VENV / "bin" / "hpresil"), "--config", str(configs[name]), "controller"]
            lab._spawn_daemon(argv, name)
            port = a_port if name == A else lab.controller_port
            wait_for(f"{name} serving", lambda p=port: _health(p), 30, 0.2)
        assert _health(a_port) == {"ok": True, "leader": True}
        assert _health(lab.controller_port) == {"ok": True, "leader": False}
        yield a_port
    finally:
        for name in (A, B):
            with suppress(ProcessLookupError, TypeError):
                lab.stop_process(name, signal.SIGKILL)
        wait_for("the replicas gone", lambda: _closed(lab.controller_port), 15, 0.2)
        lab.start_controller()


def test_one_replica_acts_and_a_killed_leader_is_replaced_without_acting_twice(
    clean_lab: Lab, replicas: int
) -> None:
    lab, a_port = clean_lab, replicas
    before = quiet(lab, "node1")
    inject_xid79(lab, "node1")  # B takes it in, A drains it
    drained_once(lab, "node1", before)

    job = submit_training(lab, name="it-replicas")
    node = wait_running(lab, job, min_step=2)
    before = quiet(lab, node)
    _signal(lab, A, signal.SIGSTOP)  # paused: it keeps the lock
    inject_xid79(lab, node)

    def incident() -> Any:
        found: Any = api_get(lab, f"/v1/incidents?status=open&node={node}")
        return [i for i in found if i["id"] > before]

    (opened,) = wait_for("B to take the fault in", incident, 30, 0.2)  # type: ignore[misc]
    time.sleep(5)  # more than two of B's leader checks
    assert _health(lab.controller_port) == {"ok": True, "leader": False}
    assert "DRAIN" not in node_state(lab, node)[0]
    assert [a["status"] for a in drains(lab, opened["id"])] == ["pending"]

    _signal(lab, A, signal.SIGKILL)
    started = time.monotonic()
    wait_for("B to lead", lambda: (_health(lab.controller_port) or {}).get("leader"), 10, 0.2)
    assert time.monotonic() - started <= 10
    drained_once(lab, node, before)
    restarts = lambda: int(job_field(lab, job.job_id, "Restarts"))  # noqa: E731
    wait_for("the job requeued", lambda: restarts() == 1, 30, 0.2)
    time.sleep(3)  # and not again
    assert restarts() == 1
    detail: Any = api_get(lab, f"/v1/incidents/{opened['id']}")
    requeues = [a for a in detail["actions"] if a["kind"] == "requeue"]
    assert [(a["target"], a["status"]) for a in requeues] == [(str(job.job_id), "done")]
    assert _health(a_port) is None


def test_an_agent_listing_both_replicas_goes_on_when_its_own_is_killed(
    clean_lab: Lab, replicas: int
) -> None:
    """node3's agent lists A, then B (a drop-in, as a site writes it); it reports to A.
    A is killed: B leads, and the XID node3 sees next reaches B by the agent's own
    failover and is drained once. With one URL it would wait in the spool for A."""
    lab, a_port = clean_lab, replicas
    drop_in = lab.hpresil_conf.with_name(lab.hpresil_conf.name + ".d") / "replicas.toml"
    drop_in.parent.mkdir(exist_ok=True)
    urls = [f"http://127.0.0.1:{port}" for port in (a_port, lab.controller_port)]
    drop_in.write_text(f"[controller]\nurl = {json.dumps(urls)}\n")
    try:
        lab.stop_process("agent.node3")
        lab.start_agent("node3")  # reads the drop-in
        before = quiet(lab, "node3")
        _signal(lab, A, signal.SIGKILL)
        wait_for("B to lead", lambda: (_health(lab.controller_port) or {}).get("leader"), 10, 0.2)
        inject_xid79(lab, "node3")
        drained_once(lab, "node3", before)
    finally:
        drop_in.unlink(missing_ok=True)
        lab.stop_process("agent.node3")
        lab.start_agent("node3")
