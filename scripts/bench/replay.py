#!/usr/bin/env python3
"""Replaying a policy over the stored history (``hpresil policy replay``): how fast.

A history is recorded first, in this process, through the controller's real ingest,
policy, limits and a temporary SQLite ledger: ``--nodes`` nodes (200) report every
minute for ``--rounds`` minutes (100), each report with a passing ECC result per GPU
(8), and one report in ``--fault-every`` (500) carries a fault (an XID 79, or
corrected ECC errors past the limit); a drained node is back in service 20 minutes
later (resolved, and the drains the cap held back queued, as reconcile does). The
shipped ``[policy.limits]`` hold (10 % of the fleet: 20 nodes).

That history is then replayed, read-only, as ``hpresil policy replay`` does: with the
configuration it was recorded with (it must show no difference), with ``max_out = 1``
and in shadow mode. For each: reports replayed per second, CPU seconds per 1,000
reports, the differences found. Writes scripts/bench/results/replay.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from hpresil.config import PolicyConfig  # noqa: E402
from hpresil.config.limits import LimitsConfig  # noqa: E402
from hpresil.controller import limits, replay  # noqa: E402
from hpresil.controller.ingest import Ingest  # noqa: E402
from hpresil.store import Store, repo  # noqa: E402
from hpresil.store.history import open_read_only  # noqa: E402
from hpresil.vocab import Action, Category, CheckResult, Status  # noqa: E402
from tests.unit.controller.fakes import report, result, xid79  # noqa: E402

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
BACK_AFTER = timedelta(minutes=20)
RECORDED = PolicyConfig(expedite_requeue=False)


def record(url: str, nodes: int, rounds: int, fault_every: int) -> dict[str, Any]:
    store = Store.open(url)
    store.migrate()
    names = [f"gpu{i:04d}" for i in range(nodes)]
    with store.write() as s:
        for name in names:
            repo.ensure_node(s, name, T0)
    now = [T0]
    ingest = Ingest(store, RECORDED, lambda: now[0], lambda: None)
    rng = random.Random(11)
    ok = [result(Status.OK, index=i) for i in range(8)]
    drained_at: dict[str, datetime] = {}
    faults = 0
    for round_ in range(rounds):
        for i, name in enumerate(names):
            now[0] = T0 + timedelta(minutes=round_, seconds=i * 60 / nodes)
            back(store, drained_at, now[0])
            results = list(ok)
            if rng.randrange(fault_every) == 0:
                results[3] = xid79() if rng.random() < 0.5 else ecc_past_limit()
                drained_at.setdefault(name, now[0])
                faults += 1
            ingest(report(name, *results, seq=round_ + 1))
    store.close()
    return {"nodes": nodes, "reports": nodes * rounds, "faults": faults}


def ecc_past_limit() -> CheckResult:
    return result(Status.FAIL, Action.DRAIN, Category.HBM_ECC, index=3)


def back(store: Store, drained_at: dict[str, datetime], now: datetime) -> None:
    """Nodes whose fault is BACK_AFTER old return to service, as reconcile sees it."""
    due = [n for n, at in drained_at.items() if now - at >= BACK_AFTER]
    if not due:
        return
    with store.write() as s:
        for name in due:
            del drained_at[name]
            incident = repo.open_incident(s, name)
            if incident is not None and repo.drain_queued(s, incident.id):
                incident.drained_at = incident.drained_at or now
                repo.resolve(s, incident, now)
        limits.drain_held_back(s, RECORDED, now)


def one_replay(url: str, cfg: PolicyConfig) -> dict[str, Any]:
    store = open_read_only(url)
    wall, cpu = time.monotonic(), time.process_time()
    with store.read() as s:
        found = replay.run(s, T0 - timedelta(days=1), cfg)
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    store.close()
    changes: dict[str, int] = {}
    for d in found.differences:
        for c in d.changes:
            changes[c] = changes.get(c, 0) + 1
    return {
        "reports": found.reports,
        "judged": found.judged,
        "episodes": found.episodes,
        "drained_stored": found.drained_stored,
        "drained_replayed": found.drained_replayed,
        "differences": len(found.differences),
        "changes": changes,
        "seconds": round(wall, 3),
        "reports_per_s": round(found.reports / wall),
        "cpu_s_per_1000_reports": round(cpu / found.reports * 1000, 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--fault-every", type=int, default=500)
    args = parser.parse_args()
    logging.disable(logging.ERROR)  # the cap's and the breaker's own lines
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/hpresil.db"
        cpu = time.process_time()
        history = record(url, args.nodes, args.rounds, args.fault_every)
        history["record_cpu_s_per_1000_reports"] = round(
            (time.process_time() - cpu) / history["reports"] * 1000, 3
        )
        print(f"recorded {history}", flush=True)
        configs = {
            "as recorded": RECORDED,
            "max_out = 1": RECORDED.model_copy(update={"limits": LimitsConfig(max_out=1)}),
            "shadow": RECORDED.model_copy(update={"mode": "shadow"}),
        }
        runs = {}
        for name, cfg in configs.items():
            row = one_replay(url, cfg)
            runs[name] = row
            print(
                f"{name:12s} {row['reports']} reports ({row['judged']} with a fault) in "
                f"{row['seconds']} s: {row['reports_per_s']} reports/s, "
                f"{row['cpu_s_per_1000_reports']} CPU s per 1,000; {row['episodes']} episodes, "
                f"drained {row['drained_stored']} -> {row['drained_replayed']}, "
                f"differences {row['changes']}",
                flush=True,
            )
    if runs["as recorded"]["differences"]:
        print("the configuration it was recorded with shows differences", file=sys.stderr)
        return 1
    result = {
        "history": history,
        "runs": runs,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out = HERE / "results" / "replay.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"raw figures: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
