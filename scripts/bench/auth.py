#!/usr/bin/env python3
"""What a node's signature costs the controller, beside the cluster token.

No Slurm lab: the controller's app runs in this process over a temporary SQLite ledger
and a stand-in Slurm that lists the nodes, and is called through ASGI directly (no
HTTP client or socket in the timing). Two measurements, each alternating token and
node key request by request, so both see the same machine noise:

* ``gate``: the authentication alone (:class:`CallerGate` in front of an app that only
  answers 200), for a report-sized body (one XID 79 result, 8 GPUs): the bearer-token
  comparison against the whole node path (parse, clock, body read and SHA-256, key
  derivation, HMAC, nonce). Wall µs per request (p50/p95) and CPU-seconds per 1,000.
* ``report``: ``POST /v1/reports`` through the whole app, stored in SQLite (a fresh
  report each time, one healthy result), token against node key: the latency the
  signature adds per report.

The client's signing is done before the clock starts (an agent pays it, not the
controller). Writes scripts/bench/results/auth.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hpresil.adapters.slurm import Slurm
from hpresil.adapters.slurm.model import SlurmJob, SlurmNode
from hpresil.auth import NodeKey, node_key
from hpresil.clock import utcnow
from hpresil.config import Config, ControllerConfig
from hpresil.controller.app import MAX_BODY, create_app
from hpresil.controller.callers import CallerGate
from hpresil.store import Store
from hpresil.vocab import Action, Category, CheckResult, GpuIdentity, Report, Status

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "auth.json"
TOKEN = "bench-" + "t" * 40
NODES = tuple(f"node{i}" for i in range(1, 65))  # requests go round them, as a cluster's do
WARMUP = 50  # requests of each kind before the timing (first calls build the app's stack)
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


def headers(kind: str, body: bytes, signer: NodeKey) -> list[tuple[bytes, bytes]]:
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


async def measure(app: Asgi, runs: int, status: Status) -> dict[str, dict[str, float]]:
    """Wall µs per request and CPU-seconds per 1,000, token and node key alternating."""
    signers = [NodeKey(node, node_key(TOKEN, node)) for node in NODES]
    wall: dict[str, list[float]] = {"token": [], "node_key": []}
    cpu = dict.fromkeys(wall, 0.0)
    for i in range(WARMUP * 2 + runs * 2):
        kind, signer = ("token", "node_key")[i % 2], signers[i // 2 % len(signers)]
        body = report_body(signer.node, status)
        head = headers(kind, body, signer)  # signed before the clock starts
        c0, t0 = time.process_time(), time.perf_counter()
        answer = await call(app, head, body)
        t1, c1 = time.perf_counter(), time.process_time()
        assert answer == 200, (kind, answer)
        if i >= WARMUP * 2:
            wall[kind].append((t1 - t0) * 1e6)
            cpu[kind] += c1 - c0
    return {kind: summary(wall[kind], cpu[kind]) for kind in wall}


def summary(us: list[float], cpu_s: float) -> dict[str, float]:
    ordered = sorted(us)
    return {
        "p50_us": round(statistics.median(ordered), 1),
        "p95_us": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
        "cpu_s_per_1000": round(cpu_s / len(ordered) * 1000, 4),
    }


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
    skew = ControllerConfig().max_clock_skew_s
    gate = CallerGate(
        answer_ok, token=TOKEN, prefix="/v1/", max_skew_s=skew, max_body=MAX_BODY, clock=utcnow
    )
    gate_figures = asyncio.run(measure(gate, args.runs, Status.FAIL))
    with tempfile.TemporaryDirectory(prefix="hpresil-bench-auth-") as tmp:
        db = f"sqlite:///{tmp}/hpresil.db"
        store = Store.open(db)
        store.migrate()
        config = Config(controller=ControllerConfig(database=db))
        slurm = Slurm(ListedNodes(), prefix="hpresil:", retries=0, backoff_s=0)
        app = create_app(store=store, slurm=slurm, config=config, token=TOKEN)
        report_figures = asyncio.run(measure(app, args.reports, Status.OK))
        store.close()
    added = {
        name: round(figures["node_key"]["p50_us"] - figures["token"]["p50_us"], 1)
        for name, figures in (("gate", gate_figures), ("report", report_figures))
    }
    result = {
        "gate": {"runs": args.runs, **gate_figures},
        "report": {"runs": args.reports, **report_figures},
        "node_key_adds_p50_us": added,
        "nodes": len(NODES),
        "body_bytes": {s.value: len(report_body(NODES[0], s)) for s in (Status.FAIL, Status.OK)},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()}",
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for name in ("gate", "report"):
        for kind in ("token", "node_key"):
            f = result[name][kind]
            print(
                f"{name:6} {kind:8} p50 {f['p50_us']:8.1f} µs  p95 {f['p95_us']:8.1f} µs  "
                f"{f['cpu_s_per_1000']:.4f} CPU-s/1000"
            )
    print(f"a node's signature adds (p50): {added}")
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
