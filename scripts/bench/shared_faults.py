#!/usr/bin/env python3
"""Faults that share a component, at fleet scale: one leaf switch dying, and a check
misfiring on every node, with and without the topology.

A simulated fleet of ``--nodes`` (20,000) nodes under leaf switches of 32 nodes,
twenty leaves (640 nodes) to a spine, as Slurm's ``topology/tree`` would list them.
Every report goes through the controller's real ingest, policy, shared-component
attribution, limits and SQLite ledger (in this process), as in ``blast_radius``.
Runs, side by side:

* ``leaf dies``: the 32 nodes of one leaf report InfiniBand down; with the topology,
  then without (the breaker, as shipped, trips at the 11th node);
* ``misfire, random order``: every node reports InfiniBand down, in a random order
  (seeded): how many nodes are drained before the breaker trips, with the topology;
* ``misfire, leaf by leaf``: the same, each leaf's nodes one after another (the
  worst order for the topology: a whole leaf counts as one until a second does);
* the CPU cost of the attribution: ``--compare-nodes`` (2,000) nodes misfiring in
  random order with the topology and without.

Writes scripts/bench/results/shared_faults.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from blast_radius import node_names, one_run  # noqa: E402

from hpresil.config.limits import LimitsConfig  # noqa: E402
from hpresil.controller.topology import Component, Fabric  # noqa: E402
from hpresil.vocab import Action, Category, CheckResult, Status  # noqa: E402
from tests.unit.controller.fakes import result  # noqa: E402

LEAF, SPINE = 32, 20  # nodes per leaf, leaves per spine


def fabric(nodes: int) -> Fabric:
    names = node_names(nodes)
    leaves = [names[i : i + LEAF] for i in range(0, nodes, LEAF)]
    spines = [leaves[i : i + SPINE] for i in range(0, len(leaves), SPINE)]
    return Fabric.fixed(
        [
            *(Component("switch", f"leaf{i}", frozenset(leaf)) for i, leaf in enumerate(leaves)),
            *(
                Component("switch", f"spine{i}", frozenset(n for leaf in spine for n in leaf))
                for i, spine in enumerate(spines)
            ),
        ]
    )


def ib_down() -> CheckResult:
    return result(Status.FAIL, Action.DRAIN, Category.IB_NETWORK, check="ib", index=None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20_000)
    parser.add_argument("--compare-nodes", type=int, default=2_000)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the shared faults', breakers' and cap's own lines
    n, m = args.nodes, args.compare_nodes
    shuffled = node_names(n)
    random.Random(11).shuffle(shuffled)
    few = node_names(m)
    random.Random(11).shuffle(few)
    leaf7 = node_names(n)[7 * LEAF : 8 * LEAF]
    limits = LimitsConfig()
    runs: dict[str, tuple[int, dict[str, Any]]] = {
        "leaf dies": (n, {"reporting": leaf7, "fabric": fabric(n)}),
        "leaf dies, no topology": (n, {"reporting": leaf7}),
        "misfire, random order": (n, {"reporting": shuffled, "fabric": fabric(n)}),
        "misfire, leaf by leaf": (n, {"fabric": fabric(n)}),
        "cost, topology": (m, {"reporting": few, "fabric": fabric(m)}),
        "cost, no topology": (m, {"reporting": few}),
    }
    out: dict[str, Any] = {"leaf_nodes": LEAF, "leaves_per_spine": SPINE, "runs": {}}
    for name, (nodes, kwargs) in runs.items():
        row = one_run(nodes, limits, fault=ib_down, **kwargs)
        out["runs"][name] = row
        print(
            f"{name:24s} {row['reporting']} of {nodes} nodes report IB down: "
            f"{row['shared_incidents']} shared incident(s), {row['drained']} drained, "
            f"{row['held_back_breaker']} held by the breaker, {row['held_back_capped']} by "
            f"the cap, {row['breakers_tripped']} breaker(s), {row['alerts']} alert(s), "
            f"{row['node_failures_in_mttf']} node failure(s) in MTTF; "
            f"{row['cpu_s_per_1000_reports']} CPU s per 1,000 reports",
            flush=True,
        )
    with_t = out["runs"]["cost, topology"]["cpu_s_per_1000_reports"]
    without = out["runs"]["cost, no topology"]["cpu_s_per_1000_reports"]
    out["attribution_cpu_ratio"] = round(with_t / without, 3)
    print(f"CPU per report with the topology / without: {out['attribution_cpu_ratio']}")
    out["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    path = HERE / "results" / "shared_faults.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"raw figures: {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
