#!/usr/bin/env python3
"""The reconcile pass at fleet size: what one pass costs the controller over
``--nodes`` (20,000) nodes that Slurm lists, side by side with the pass as it was
(every node's row fetched one by one and rewritten every pass).

A stand-in Slurm (the unit tests' fake backend, in this process) lists the nodes;
the ledger is SQLite in a temporary folder; each node has a realistic ``last_results``
(107 results, about 40 KB of JSON, as a real 8-GPU heartbeat leaves). Passes: the
first (every row created), then ``--passes`` steady ones with nothing changed, and one
with 1 % of the nodes changing state. Wall and CPU seconds per pass; writes
scripts/bench/results/reconcile_pass.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from hpresil.adapters.slurm import Slurm  # noqa: E402
from hpresil.config import ControllerConfig, PolicyConfig  # noqa: E402
from hpresil.controller import reconcile  # noqa: E402
from hpresil.controller.reconcile import Reconciler  # noqa: E402
from hpresil.store import Store, repo  # noqa: E402
from hpresil.store.models import NodeRow  # noqa: E402
from tests.unit.controller.fakes import FakeBackend, FakeClock  # noqa: E402

RESULT = {
    "check": "ecc",
    "status": "ok",
    "action": "none",
    "category": None,
    "summary": "no uncorrectable ECC errors; 0 corrected since boot",
    "gpu": {"index": 0, "uuid": "GPU-00000000-0000-0000-0000-000000000000", "name": "H100"},
    "evidence": {"volatile": {"sbe": 0, "dbe": 0}, "aggregate": {"sbe": 3, "dbe": 0}},
}


def old_sync_node(s: Any, node: Any, owned: bool, now: Any) -> None:
    """The pass as it was: one SELECT per node, every field written every pass."""
    row = repo.ensure_node(s, node.name, now)
    row.slurm_state = node.state_text
    row.slurm_reason = node.reason
    row.drained_by_hpresil = owned and (node.drained or node.down)
    row.slurm_seen_at = now


class OldReconciler(Reconciler):
    def sync(self, listed: Any = None) -> None:
        seen_at = self._clock()
        nodes = self._slurm.nodes()
        with self._store.write() as s:
            for node in nodes:
                old_sync_node(s, node, self._slurm.owns(node), seen_at)
            self._resolve_returned(s, nodes, seen_at)
            reconcile.retry_given_up(s, seen_at)


def one_side(cls: type[Reconciler], nodes: int, passes: int) -> dict[str, Any]:
    names = [f"gpu{i:05d}" for i in range(nodes)]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/hpresil.db"
        store = Store.open(url)
        store.migrate()
        backend = FakeBackend(*names)
        clock = FakeClock()
        rec = cls(
            store,
            Slurm(backend, retries=0, backoff_s=0),
            ControllerConfig(database=url),
            clock=clock,
            policy=PolicyConfig(),
        )

        def timed() -> tuple[float, float]:
            c0, w0 = time.process_time(), time.perf_counter()
            rec.sync()
            clock.advance(5)
            return time.perf_counter() - w0, time.process_time() - c0

        first = timed()
        with store.write() as s:  # what a real fleet's nodes hold: their latest results
            for row in s.query(NodeRow):
                row.last_results = [RESULT] * 107
        steady = [timed() for _ in range(passes)]
        for name in names[::100]:
            backend.set_node(name, "DOWN", reason="Not responding")
        changed = timed()
        store.close()
    return {
        "first_pass": {"wall_s": round(first[0], 3), "cpu_s": round(first[1], 3)},
        "steady_pass": {
            "wall_s": round(statistics.median(w for w, _ in steady), 3),
            "cpu_s": round(statistics.median(c for _, c in steady), 3),
        },
        "pass_with_1pct_changed": {"wall_s": round(changed[0], 3), "cpu_s": round(changed[1], 3)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20_000)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    out: dict[str, Any] = {"nodes": args.nodes, "results_per_node": 107}
    for name, cls in (("before", OldReconciler), ("now", Reconciler)):
        out[name] = row = one_side(cls, args.nodes, args.passes)
        print(
            f"{name:6s} {args.nodes} nodes: first pass {row['first_pass']['cpu_s']} CPU s, "
            f"steady {row['steady_pass']['cpu_s']} CPU s ({row['steady_pass']['wall_s']} s "
            f"wall), 1 % changed {row['pass_with_1pct_changed']['cpu_s']} CPU s",
            flush=True,
        )
    ratio = out["before"]["steady_pass"]["cpu_s"] / max(out["now"]["steady_pass"]["cpu_s"], 1e-9)
    out["steady_cpu_ratio"] = round(ratio, 1)
    print(f"a steady pass costs {out['steady_cpu_ratio']}x less CPU than before")
    out["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    path = HERE / "results" / "reconcile_pass.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"raw figures: {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
