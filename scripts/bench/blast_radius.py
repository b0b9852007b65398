#!/usr/bin/env python3
"""A check that misfires on every node: how much hpresil drains.

The same XID 79 reported by every node of a simulated fleet, one report each, through
the controller's real ingest, policy, limits and SQLite ledger (in this process; all
nodes known to it). Three runs:

* ``defaults``, on ``--nodes`` nodes (20,000): ``[policy.limits]`` as shipped (cap
  10 % / 1,000 nodes, breaker at more than 10 nodes in 15 minutes): the breaker should
  trip at the 11th node;
* ``breaker off``, on ``--compare-nodes`` (2,000): ``breaker_nodes`` past the fleet,
  so the cap alone holds;
* ``no limits``, on ``--compare-nodes``: cap and breaker past the fleet, what the code
  did before them. Side by side with the two others at the same size, its CPU per
  report is the limits' cost (at 20,000 these two runs take tens of minutes here: each
  drain decision counts the nodes out, a scan of the open incidents).

For each: nodes drained (drain actions queued), held back (by the cap, by the
breaker), breakers tripped, alerts queued, and the controller's CPU seconds per 1,000
reports. Writes scripts/bench/results/blast_radius.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import select  # noqa: E402

from hpresil.config import JobsConfig, PolicyConfig  # noqa: E402
from hpresil.config.limits import LimitsConfig  # noqa: E402
from hpresil.controller.ingest import Ingest  # noqa: E402
from hpresil.controller.topology import Fabric  # noqa: E402
from hpresil.store import Store, repo  # noqa: E402
from hpresil.store.models import ActionRow, BreakerRow, IncidentRow, SharedFaultRow  # noqa: E402
from hpresil.vocab import CheckResult  # noqa: E402
from tests.unit.controller.fakes import report, xid79  # noqa: E402

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def node_names(nodes: int) -> list[str]:
    return [f"gpu{i:05d}" for i in range(nodes)]


def one_run(
    nodes: int,
    limits: LimitsConfig,
    *,
    fault: Callable[[], CheckResult] = xid79,
    reporting: Sequence[str] | None = None,
    fabric: Fabric | None = None,
) -> dict[str, Any]:
    """``reporting`` (default: every node, in order) each send one report of ``fault``
    to a controller that knows ``nodes`` nodes (and the shared components of ``fabric``)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/hpresil.db")
        store.migrate()
        names = node_names(nodes)
        with store.write() as s:  # the fleet, as reconcile records Slurm's nodes
            for name in names:
                repo.ensure_node(s, name, T0)
        now = [T0]

        def clock() -> datetime:
            now[0] += timedelta(milliseconds=5)  # a storm: every node within minutes
            return now[0]

        policy = PolicyConfig(expedite_requeue=False, limits=limits)
        jobs = JobsConfig(webhook_url="http://127.0.0.1:9/alerts")
        ingest = Ingest(store, policy, clock, lambda: None, jobs, fabric=fabric)
        sending = names if reporting is None else reporting
        cpu0 = time.process_time()
        for name in sending:
            ingest(report(name, fault()))
        cpu = time.process_time() - cpu0
        with store.read() as s:
            acts = s.scalars(select(ActionRow)).all()
            drains = Counter(a.outcome or "queued" for a in acts if a.kind == "drain")
            alerts = sum(1 for a in acts if a.kind == "notify")
            requeue_only = sum(1 for a in acts if a.kind == "requeue_node")
            breakers = len(s.scalars(select(BreakerRow)).all())
            shared = len(s.scalars(select(SharedFaultRow)).all())
            incidents = s.scalars(select(IncidentRow)).all()
            failures = sum(1 for i in incidents if i.shared_id is None and i.job_id is None)
        store.close()
    return {
        "nodes": nodes,
        "reporting": len(sending),
        "shared_incidents": shared,
        "node_failures_in_mttf": failures,
        "drained": drains.get("queued", 0),
        "held_back_capped": drains.get("capped", 0),
        "held_back_breaker": drains.get("breaker", 0),
        "jobs_requeued_without_drain_actions": requeue_only,
        "breakers_tripped": breakers,
        "alerts": alerts,
        "cpu_s_per_1000_reports": round(cpu / len(sending) * 1000, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20_000)
    parser.add_argument("--compare-nodes", type=int, default=2_000)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the breaker's and the cap's own lines
    m = args.compare_nodes
    runs = {
        "defaults": (args.nodes, LimitsConfig()),
        "defaults (compare)": (m, LimitsConfig()),
        "breaker off": (m, LimitsConfig(breaker_nodes=m + 1)),
        "no limits": (m, LimitsConfig(breaker_nodes=m + 1, max_out=m, max_out_pct=100)),
    }
    result: dict[str, Any] = {"runs": {}}
    for name, (nodes, limits) in runs.items():
        row = one_run(nodes, limits)
        result["runs"][name] = row
        print(
            f"{name:12s} {row['nodes']} nodes misfiring: {row['drained']} drained, "
            f"{row['held_back_capped']} held by the cap, {row['held_back_breaker']} by the "
            f"breaker, {row['breakers_tripped']} breaker(s), {row['alerts']} alert(s); "
            f"{row['cpu_s_per_1000_reports']} CPU s per 1,000 reports",
            flush=True,
        )
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out = HERE / "results" / "blast_radius.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"raw figures: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
