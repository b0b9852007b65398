#!/usr/bin/env python3
"""What a node's signature and a person's MUNGE credential cost the controller, beside
the cluster token.

No Slurm lab: the controller's app runs in this process over a temporary SQLite ledger
and a stand-in Slurm that lists the nodes, and is called through ASGI directly (no
HTTP client or socket in the timing). MUNGE needs munged: a private one is started
(tests/munged.py: its own key and socket), never the host's. Two measurements, each
taking token, node key and MUNGE in turn request by request, so all see the same
machine noise:

* ``gate``: the authentication alone (:class:`CallerGate` in front of an app that only
  answers 200), for a report-sized body (one XID 79 result, 8 GPUs): the bearer-token
  comparison against the whole node path (parse, clock, body read and SHA-256, key
  derivation, HMAC, nonce) and the MUNGE path (``unmunge`` run in a worker thread,
  the user and group lookups, the payload and body checks). Wall µs per request
  (p50/p95) and CPU-seconds per 1,000 (this process's; ``unmunge`` and munged are
  other processes: their CPU is counted apart, from /proc, as ``helper_cpu_s_per_1000``).
* ``report``: ``POST /v1/reports`` through the whole app, stored in SQLite (a fresh
  report each time, one healthy result), each credential in turn: the latency each
  adds per report.

The client's signing and ``munge`` are done before the clock starts (the agent or the
CLI pays them, not the controller). Writes scripts/bench/results/auth.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests.munged

from hpresil.adapters.slurm import Slurm  # noqa: E402
from hpresil.adapters.slurm.model import SlurmJob, SlurmNode  # noqa: E402
from hpresil.auth import Credential, NodeKey, node_key  # noqa: E402
from hpresil.client import MungeCredential  # noqa: E402
from hpresil.clock import utcnow  # noqa: E402
from hpresil.config import Config, ControllerConfig  # noqa: E402
from hpresil.controller.app import MAX_BODY, create_app  # noqa: E402
from hpresil.controller.callers import CallerGate  # noqa: E402
from hpresil.controller.people import People  # noqa: E402
from hpresil.store import Store  # noqa: E402
from hpresil.vocab import Action, Category, CheckResult, GpuIdentity, Report, Status  # noqa: E402
from tests.munged import private_munged  # noqa: E402

RESULTS = HERE / "results" / "auth.json"
TOKEN = "bench-" + "t" * 40
NODES = tuple(f"node{i}" for i in range(1, 65))  # requests go round them, as a cluster's do
WARMUP = 50  # requests of each kind before the timing (first calls build the app's stack)
KINDS = ("token", "node_key", "munge")
Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class ListedNodes:
    """A Slurm that lists :data:`NODES` and is never asked to change anything."""

    def nodes(self) -> list[SlurmNode]:
        return [SlurmNode(name=name, states=frozenset({"IDLE"})) for name in NODES]

    def jobs(self) -> list[SlurmJob]:
        return []

    def __getattr__(self, name: str) -> Callable[..., None]:
        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"the benchmark does not {name}")

        return refuse


def report_body(node: str, status: Status) -> bytes:
    now = utcnow()
    gpus = tuple(
        GpuIdentity(index=i, uuid=f"GPU-{i:08d}-aaaa-bbbb-cccc-000000000000", name="H100")
        for i in range(8)
    )
    fault = CheckResult(
        check="xid",
        status=status,
        action=Action.DRAIN_NOW if status is Status.FAIL else Action.NONE,
        category=Category.GPU_LOST_PCIE if status is Status.FAIL else None,
        summary="XID 79 on GPU 3" if status is Status.FAIL else "no XID",
        observed_at=now,
    )
    rep = Report(
        report_id=uuid.uuid4().hex,
        node=node,
        seq=0,
        sent_at=now,
        agent_version="bench",
        gpus=gpus,
        results=(fault,),
    )
    return json.dumps(rep.model_dump(mode="json")).encode()


def headers(kind: str, body: bytes, signer: Credential) -> list[tuple[bytes, bytes]]:
    auth = (
        f"Bearer {TOKEN}" if kind == "token" else signer.authorization("POST", "/v1/reports", body)
    )
    return [
        (b"authorization", auth.encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]


async def call(app: Asgi, head: list[tuple[bytes, bytes]], body: bytes) -> int:
    """One POST /v1/reports through ``app``: the answer's status."""
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(int(message["status"]))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/reports",
        "raw_path": b"/v1/reports",
        "query_string": b"",
        "root_path": "",
        "headers": head,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return status[0]


async def measure(
    app: Asgi, runs: int, status: Status, munge_socket: str, munged_pid: int
) -> dict[str, dict[str, float]]:
    """Wall µs per request and CPU-seconds per 1,000, token, node key and MUNGE in turn
    (MUNGE: also the CPU of ``unmunge`` and munged, this process's children and munged)."""
    signers = [NodeKey(node, node_key(TOKEN, node)) for node in NODES]
    person = MungeCredential(munge_socket)
    wall: dict[str, list[float]] = {kind: [] for kind in KINDS}
    cpu = dict.fromkeys(KINDS, 0.0)
    helper_cpu = 0.0
    for i in range(len(KINDS) * (WARMUP + runs)):
        kind, signer = KINDS[i % len(KINDS)], signers[i // len(KINDS) % len(signers)]
        body = report_body(signer.node, status)
        head = headers(kind, body, person if kind == "munge" else signer)  # before the clock
        h0 = children_cpu() + process_cpu(munged_pid)
        c0, t0 = time.process_time(), time.perf_counter()
        answer = await call(app, head, body)
        t1, c1 = time.perf_counter(), time.process_time()
        h1 = children_cpu() + process_cpu(munged_pid)
        assert answer == 200, (kind, answer)
        if i >= WARMUP * len(KINDS):
            wall[kind].append((t1 - t0) * 1e6)
            cpu[kind] += c1 - c0
            helper_cpu += h1 - h0 if kind == "munge" else 0.0
    found = {kind: summary(wall[kind], cpu[kind]) for kind in KINDS}
    found["munge"]["helper_cpu_s_per_1000"] = round(helper_cpu / runs * 1000, 4)
    return found


def children_cpu() -> float:
    """CPU-seconds of this process's finished children: each ``unmunge`` (the client's
    ``munge`` has finished before the window opens)."""
    usage = os.times()
    return usage.children_user + usage.children_system


def process_cpu(pid: int) -> float:
    """CPU-seconds munged has used so far (/proc/PID/stat: utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(us: list[float], cpu_s: float) -> dict[str, float]:
    ordered = sorted(us)
    return {
        "p50_us": round(statistics.median(ordered), 1),
        "p95_us": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
        "cpu_s_per_1000": round(cpu_s / len(ordered) * 1000, 4),
    }


def munged_pid(socket: str) -> int:
    return int((Path(socket).parent / "munged.pid").read_text())


async def answer_ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5000, help="requests of each kind (gate)")
    parser.add_argument("--reports", type=int, default=1000, help="reports of each kind (app)")
    args = parser.parse_args()
    with private_munged() as socket:
        gate_figures, report_figures = measure_both(args.runs, args.reports, socket)
    added = {
        kind: {
            name: round(figures[kind]["p50_us"] - figures["token"]["p50_us"], 1)
            for name, figures in (("gate", gate_figures), ("report", report_figures))
        }
        for kind in ("node_key", "munge")
    }
    result = {
        "gate": {"runs": args.runs, **gate_figures},
        "report": {"runs": args.reports, **report_figures},
        "node_key_adds_p50_us": added["node_key"],
        "munge_adds_p50_us": added["munge"],
        "nodes": len(NODES),
        "body_bytes": {s.value: len(report_body(NODES[0], s)) for s in (Status.FAIL, Status.OK)},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()}",
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for name in ("gate", "report"):
        for kind in KINDS:
            f = result[name][kind]
            helper = f.get("helper_cpu_s_per_1000")
            print(
                f"{name:6} {kind:8} p50 {f['p50_us']:8.1f} µs  p95 {f['p95_us']:8.1f} µs  "
                f"{f['cpu_s_per_1000']:.4f} CPU-s/1000"
                + (f" (+ {helper:.4f} in unmunge and munged)" if helper is not None else "")
            )
    print(f"a node's signature adds (p50): {added['node_key']}")
    print(f"a MUNGE credential adds (p50): {added['munge']}")
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


def measure_both(
    runs: int, reports: int, socket: str
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """(gate, report) figures, MUNGE through the munged on ``socket``."""
    people = People(socket, "", frozenset())  # root's credential: an operator
    pid = munged_pid(socket)
    skew = ControllerConfig().max_clock_skew_s
    gate = CallerGate(
        answer_ok,
        token=TOKEN,
        prefix="/v1/",
        max_skew_s=skew,
        max_body=MAX_BODY,
        clock=utcnow,
        people=people,
    )
    gate_figures = asyncio.run(measure(gate, runs, Status.FAIL, socket, pid))
    with tempfile.TemporaryDirectory(prefix="hpresil-bench-auth-") as tmp:
        db = f"sqlite:///{tmp}/hpresil.db"
        store = Store.open(db)
        store.migrate()
        config = Config(controller=ControllerConfig(database=db, munge_socket=socket))
        slurm = Slurm(ListedNodes(), prefix="hpresil:", retries=0, backoff_s=0)
        app = create_app(store=store, slurm=slurm, config=config, token=TOKEN)
        with contextlib.closing(store):
            report_figures = asyncio.run(measure(app, reports, Status.OK, socket, pid))
    return gate_figures, report_figures


if __name__ == "__main__":
    raise SystemExit(main())
