#!/usr/bin/env python3
"""What a heartbeat's update of its node costs in SQLite with the node's latest results
in its row (migration 0007) and in a table of their own (0008), side by side.

Two temporary ledgers, each migrated by hpresil to its revision, hold ``--nodes``
nodes whose latest results are some 40 KB of JSON (107 results, as a real 8-GPU
agent's state). Then, in turn on each, ``--batches`` transactions each update
``last_report_at`` and ``last_seq`` of 20 nodes (the heartbeat lane's statement, a
group commit of 20): CPU-ms and wall-ms per update, and the bytes the write-ahead log
received. Writes scripts/bench/results/row_rewrite.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from alembic import command

from hpresil.store import Store
from hpresil.store.db import alembic_config

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "row_rewrite.json"
RESULT = {"check": "ecc", "status": "ok", "observed_at": "2026-12-06T00:00:00+00:00"}
UPDATE = "UPDATE nodes SET last_report_at = ?, last_seq = ? WHERE name = ?"
PER_COMMIT = 20


def ledger(path: Path, revision: str, nodes: int) -> None:
    """A ledger at ``revision`` whose nodes each hold 107 results (about 40 KB)."""
    engine = Store.open(f"sqlite:///{path}").engine
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)
    engine.dispose()
    results = json.dumps([{**RESULT, "detail": "x" * 300}] * 107)
    with sqlite3.connect(path) as con:
        names = [f"gpu{i:05d}" for i in range(nodes)]
        con.executemany(
            "INSERT INTO nodes (name, first_seen_at, drained_by_hpresil) VALUES (?, ?, 0)",
            ((n, "2026-12-06 00:00:00.000000") for n in names),
        )
        if revision == "0007":
            con.executemany(
                "UPDATE nodes SET last_results = ? WHERE name = ?", ((results, n) for n in names)
            )
        else:
            con.executemany(
                "INSERT INTO node_results (node, results) VALUES (?, ?)",
                ((n, results) for n in names),
            )
        con.commit()
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def updates(path: Path, nodes: int, batches: int, rng: random.Random) -> dict[str, float]:
    con = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "wal_autocheckpoint=0"):
        con.execute(f"PRAGMA {pragma}")
    cpu, wall = time.process_time(), time.perf_counter()
    for b in range(batches):
        con.execute("BEGIN IMMEDIATE")
        rows = [
            ("2026-12-06 00:00:10.000000", b, f"gpu{rng.randrange(nodes):05d}")
            for _ in range(PER_COMMIT)
        ]
        con.executemany(UPDATE, rows)
        con.execute("COMMIT")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    wal = Path(f"{path}-wal").stat().st_size
    con.close()
    n = batches * PER_COMMIT
    return {
        "cpu_ms_per_update": round(cpu / n * 1000, 4),
        "wall_ms_per_update": round(wall / n * 1000, 4),
        "wal_bytes_per_update": round(wal / n),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3000)
    parser.add_argument("--batches", type=int, default=300)
    args = parser.parse_args()
    found: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="hpresil-bench-row-") as tmp:
        for revision, label in (("0007", "results_in_the_node_row"), ("head", "results_apart")):
            path = Path(tmp) / f"{revision}.db"
            ledger(path, revision, args.nodes)
            found[label] = updates(path, args.nodes, args.batches, random.Random(1))
    old, new = found["results_in_the_node_row"], found["results_apart"]
    assert isinstance(old, dict) and isinstance(new, dict)
    found["ratios"] = {k: round(old[k] / new[k], 1) for k in old}
    found |= {
        "nodes": args.nodes,
        "updates": args.batches * PER_COMMIT,
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    print(json.dumps(found, indent=2))
    RESULTS.write_text(json.dumps(found, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
