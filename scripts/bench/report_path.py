#!/usr/bin/env python3
"""Where a heartbeat's CPU goes in the controller, in this process (no HTTP socket, no
Slurm lab): the figures ``scripts/bench/ingest``'s README paragraph breaks its cost into.

A temporary SQLite ledger holds ``--nodes`` nodes whose state the controller already
holds (their digest stored, as a fleet that has run a while). Each round takes, in turn
so that all see the same machine noise:

* ``ingest``: a quiet heartbeat (the state's digest, no results) through
  :class:`~hpresil.controller.ingest.Ingest` alone: the database work;
* ``app``: another through the whole app, signed with its node's key and called
  through ASGI (:func:`auth.call`): the authentication, then the heartbeats' lane
  (:mod:`hpresil.controller.lane`: validation, a group commit of one on a worker
  thread, the ingest's two statements). One at a time, so no commit is shared: under
  load the lane commits many heartbeats at once (``scripts/bench/ingest``);

CPU-ms per heartbeat (this process, every thread). Then ``digest``: what the agent's
:func:`~hpresil.vocab.state_digest` costs over 107 results and 8 GPUs (the size of the
state recorded from the agent in ``scripts/bench/fleet.py``; synthetic results here),
and ``cli_start``: ``hpresil --version``'s wall seconds, the median of 10.
Writes scripts/bench/results/report_path.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from auth import TOKEN, ListedNodes, call  # scripts/bench/auth.py
from sqlalchemy import update

from hpresil.adapters.slurm import Slurm
from hpresil.auth import NodeKey, node_key
from hpresil.clock import utcnow
from hpresil.config import Config, ControllerConfig, PolicyConfig
from hpresil.controller.app import create_app
from hpresil.controller.ingest import Ingest
from hpresil.store import Store, repo
from hpresil.store.models import NodeRow
from hpresil.vocab import CheckResult, GpuIdentity, Report, Status, state_digest

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "report_path.json"
DIGEST = state_digest((), ())
NODES = tuple(f"node{i}" for i in range(1, 65))  # ListedNodes' names


def heartbeat(node: str, seq: int) -> Report:
    return Report(
        report_id=f"hb-{node}-{seq:08d}",
        node=node,
        seq=seq,
        sent_at=utcnow(),
        digest=DIGEST,
        heartbeat=True,
    )


def ledger(db: Path) -> Store:
    store = Store.open(f"sqlite:///{db}")
    store.migrate()
    with store.write() as s:
        for name in NODES:
            repo.add_node(s, name, utcnow())
    with store.write() as s:
        s.execute(update(NodeRow).values(state_digest=DIGEST, worst="ok", last_seq=0))
    return store


async def rounds(store: Store, db: Path, runs: int) -> dict[str, float]:
    ingest = Ingest(store, PolicyConfig(), utcnow, lambda: None)
    cfg = Config(controller=ControllerConfig(database=f"sqlite:///{db}"))
    app = create_app(store=store, slurm=Slurm(ListedNodes()), config=cfg, token=TOKEN)
    keys = {n: NodeKey(n, node_key(TOKEN, n)) for n in NODES}
    cpu = {"ingest": 0.0, "app": 0.0}
    warmup = 200
    for i in range(warmup + runs):
        node, seq = NODES[i % len(NODES)], 2 * (i // len(NODES)) + 1
        direct, signed = heartbeat(node, seq), heartbeat(node, seq + 1)
        body = signed.model_dump_json().encode()
        head = [
            (b"authorization", keys[node].authorization("POST", "/v1/reports", body).encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        c0 = time.process_time()
        ack = ingest(direct)
        c1 = time.process_time()
        status = await call(app, head, body)
        c2 = time.process_time()
        assert not ack.duplicate and status == 200, (ack, status)
        if i >= warmup:
            cpu["ingest"] += c1 - c0
            cpu["app"] += c2 - c1
    return {k: round(v / runs * 1000, 3) for k, v in cpu.items()}


def digest_ms(runs: int) -> float:
    now = datetime.now(UTC)
    gpus = [GpuIdentity(index=i, uuid=f"GPU-{i:08d}", serial=f"16500{i}") for i in range(8)]
    results = [
        CheckResult(check=f"check{i % 14}", status=Status.OK, gpu=gpus[i % 8], observed_at=now)
        for i in range(107)
    ]
    c0 = time.process_time()
    for _ in range(runs):
        state_digest(results, gpus)
    return round((time.process_time() - c0) / runs * 1000, 3)


def cli_start_s() -> float:
    hpresil = Path(sys.executable).with_name("hpresil")
    walls = []
    for _ in range(10):
        t0 = time.perf_counter()
        subprocess.run([str(hpresil), "--version"], check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
    return round(statistics.median(walls), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3000, help="heartbeats of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hpresil-bench-report-path-") as tmp:
        db = Path(tmp) / "hpresil.db"
        store = ledger(db)
        try:
            per = asyncio.run(rounds(store, db, args.runs))
        finally:
            store.close()
    found = {
        "cpu_ms_per_heartbeat": {**per, "app_beyond_ingest": round(per["app"] - per["ingest"], 3)},
        "state_digest_ms_107_results": digest_ms(300),
        "cli_start_s_median_of_10": cli_start_s(),
        "runs": args.runs,
        "machine": f"{platform.machine()}, CPython {platform.python_version()}",
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    print(json.dumps(found, indent=2))
    RESULTS.write_text(json.dumps(found, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
