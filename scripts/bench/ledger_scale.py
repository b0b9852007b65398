#!/usr/bin/env python3
"""Reads at fleet size: MTTF over a million incidents, the node listing of 20,000 nodes.

Builds the ledger of ``ledger_scale_fleet`` (20,000 nodes, each with the results of
the continuous checks on 8 GPUs; 1,000,000 incidents over two years) in a SQLite
file migrated by hpresil, written in bulk; ``--postgres URL`` (an empty database)
builds it there too. Then times, side by side in the same run and on the same data:

* ``GET /v1/stats/mttf``, by all, node and category (and each with ``since`` 30 days
  back): today's code path as it was (every node and incident loaded through the ORM,
  :func:`hpresil.controller.stats.mttf` over them) against the database's aggregates
  (:func:`hpresil.controller.mttf.from_ledger`), both up to the JSON answer; the two
  answers are compared (``max_rel_diff``);
* ``GET /v1/nodes``: the whole list, a page of 100 (in the middle of the fleet), a
  host list (``gpu[00001-00128]``), and, new only, ``--state drain`` and
  ``--unhealthy`` (a page of 100, and all of them). The old code had no filter or page:
  it built the whole list, which a caller then cut.

Wall and CPU seconds of this process (SQLite works in it; PostgreSQL's server
process is not counted in CPU). The old path runs once per case, the new one
``--repeat`` times (best kept). Writes scripts/bench/results/ledger_scale.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import ledger_scale_fleet as fleet  # noqa: E402
from pydantic import BaseModel, TypeAdapter  # noqa: E402

from hpresil.api import MttfView, NodeView  # noqa: E402
from hpresil.config import ControllerConfig  # noqa: E402
from hpresil.controller import node_list, stats  # noqa: E402
from hpresil.controller.node_list import NodeQuery  # noqa: E402
from hpresil.controller.views import Views  # noqa: E402
from hpresil.store import Store, repo  # noqa: E402
from hpresil.store.models import IncidentRow, NodeRow  # noqa: E402
from hpresil.vocab import Health, Status  # noqa: E402

NOW = fleet.NOW
SINCE = NOW - timedelta(days=30)
STALE_AFTER_S = 60.0
HOSTS = "gpu[00001-00128]"
NODE_LIST = TypeAdapter(list[NodeView])


# --- today's code path, as it was before the aggregates (hpresil/controller/views.py) ---
def old_mttf(store: Store, by: stats.By, since: datetime | None) -> MttfView:
    with store.read() as s:
        every = repo.nodes(s)
        rows = [r for r in every if r.slurm_seen_at is not None] or list(every)
        nodes = [stats.NodeSpan(r.name, r.first_seen_at) for r in rows]
        names = {r.name for r in rows}
        incidents = [_span(i) for i in repo.incidents(s, details=False) if i.node in names]
    return stats.mttf(nodes, incidents, now=NOW, by=by, since=since)


def _span(row: IncidentRow) -> stats.IncidentSpan:
    return stats.IncidentSpan(
        node=row.node,
        category=row.category,
        detected_at=row.detected_at,
        drained_at=row.drained_at,
        resolved_at=row.resolved_at,
        job=row.job_id is not None,
        shared=row.shared_id is not None,
    )


def old_nodes(store: Store) -> list[NodeView]:
    with store.read() as s:
        rows, opened = repo.nodes(s), repo.open_incidents(s)
    ordered = sorted(rows, key=lambda r: node_list.natural_key(r.name))
    return [_old_view(r, opened.get(r.name)) for r in ordered]


def _old_view(row: NodeRow, incident: IncidentRow | None) -> NodeView:
    age = (NOW - row.last_report_at).total_seconds() if row.last_report_at else None
    return NodeView(
        name=row.name,
        slurm_state=row.slurm_state,
        slurm_reason=row.slurm_reason,
        drained_by_hpresil=row.drained_by_hpresil,
        health=_old_health(row, incident, age),
        open_incident=incident.id if incident else None,
        last_report_at=row.last_report_at,
        last_report_age_s=age,
        gpus=row.gpus,
    )


def _old_health(row: NodeRow, incident: IncidentRow | None, age_s: float | None) -> Health:
    if incident is not None and incident.hardware:
        return Health.FAIL
    if age_s is None:
        return Health.UNKNOWN
    if age_s > STALE_AFTER_S:
        return Health.STALE
    statuses = {r.get("status") for r in row.last_results or []}
    if Status.FAIL.value in statuses:
        return Health.FAIL
    return Health.WARN if Status.WARN.value in statuses else Health.OK


# --- timing ---
def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[dict[str, float], Any]:
    best: tuple[float, float] | None = None
    result = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        took = (time.perf_counter() - wall, time.process_time() - cpu)
        best = took if best is None or took < best else best
    assert best is not None
    return {"wall_s": round(best[0], 3), "cpu_s": round(best[1], 3)}, result


def side_by_side(
    label: str, old: Callable[[], Any] | None, new: Callable[[], Any], repeat: int
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    if old is not None:
        row["old"], was = timed(old)
    row["new"], got = timed(new, repeat)
    if old is not None:
        row["speedup_wall"] = round(row["old"]["wall_s"] / row["new"]["wall_s"], 1)
        row["max_rel_diff"] = _diff(was, got)
    was = f"old {row['old']['wall_s']:6.2f} s (CPU {row['old']['cpu_s']:6.2f})" if old else ""
    now = f"new {row['new']['wall_s']:5.3f} s (CPU {row['new']['cpu_s']:5.3f})"
    same = f"  same answer (max rel. diff {row['max_rel_diff']:.1e})" if old else ""
    print(f"  {label:36s} {was:29s} {now}{same}", flush=True)
    return row


def _diff(old: Any, new: Any) -> float:
    """The largest relative difference between the numbers of two JSON answers (0: equal)."""
    a, b = json.loads(old), json.loads(new)
    worst = 0.0

    def walk(x: Any, y: Any) -> None:
        nonlocal worst
        if isinstance(x, dict) and isinstance(y, dict) and x.keys() == y.keys():
            for k in x:
                walk(x[k], y[k])
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for p, q in zip(x, y, strict=True):
                walk(p, q)
        elif isinstance(x, float | int) and isinstance(y, float | int):
            worst = max(worst, abs(x - y) / max(abs(x), abs(y), 1e-12))
        elif x != y:
            worst = float("inf")

    walk(a, b)
    return worst


def dumped(view: BaseModel | list[NodeView]) -> bytes:
    """The answer's JSON, as the route writes it."""
    return NODE_LIST.dump_json(view) if isinstance(view, list) else view.model_dump_json().encode()


# --- the runs ---
def run(url: str, shape: fleet.Shape, repeat: int) -> dict[str, Any]:
    store = Store.open(url)
    store.migrate()
    built, _ = timed(lambda: fleet.write(store.engine, shape))
    print(f"  ledger written in {built['wall_s']:.0f} s", flush=True)
    views = Views(store, ControllerConfig(database=url, stale_after_s=STALE_AFTER_S), lambda: NOW)
    out: dict[str, Any] = {"build": built, "mttf": {}, "nodes": {}}
    for by in ("all", "node", "category"):
        for since in (None, SINCE):
            label = by if since is None else f"{by}, since 30 days"
            old = None if since else (lambda by=by: dumped(old_mttf(store, by, None)))
            new = lambda by=by, since=since: dumped(views.mttf(by, since))  # noqa: E731
            out["mttf"][label] = side_by_side(f"mttf {label}", old, new, repeat)
    out["nodes"] = nodes_runs(store, views, fleet.node_name(shape.nodes // 2), repeat)
    store.close()
    return out


def nodes_runs(store: Store, views: Views, middle: str, repeat: int) -> dict[str, Any]:
    hosts = node_list.expand_hosts(HOSTS)
    wanted = set(hosts)

    def whole() -> bytes:
        return dumped(old_nodes(store))

    def old_page() -> bytes:
        every = old_nodes(store)
        at = next(i for i, n in enumerate(every) if n.name == middle)
        return dumped(every[at + 1 : at + 101])

    def old_hosts() -> bytes:
        return dumped([n for n in old_nodes(store) if n.name in wanted])

    cases: Sequence[tuple[str, Callable[[], bytes] | None, NodeQuery]] = [
        ("whole list", whole, NodeQuery()),
        (f"a page of 100 after {middle}", old_page, NodeQuery(limit=100, after=middle)),
        (f"host list {HOSTS}", old_hosts, NodeQuery(hosts=hosts)),
        ("--state drain", None, NodeQuery(state="drain")),
        ("--unhealthy, a page of 100", None, NodeQuery(unhealthy=True, limit=100)),
        ("--unhealthy, all", None, NodeQuery(unhealthy=True)),
    ]
    return {
        label: side_by_side(f"nodes {label}", old, lambda q=q: dumped(views.nodes(q).nodes), repeat)
        for label, old, q in cases
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20_000)
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="new path: runs, best kept")
    parser.add_argument("--postgres", metavar="URL", help="also on this (empty) database")
    parser.add_argument("--keep", metavar="FILE", help="the SQLite file (default: temporary)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    shape = fleet.Shape(nodes=args.nodes, incidents=args.incidents)
    result: dict[str, Any] = {"shape": shape.__dict__, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or f"{tmp}/hpresil.db"
        print(f"SQLite ({path}):", flush=True)
        result["sqlite"] = run(f"sqlite:///{path}", shape, args.repeat)
    if args.postgres:
        print("PostgreSQL:", flush=True)
        result["postgresql"] = run(args.postgres, shape, args.repeat)
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out = HERE / "results" / "ledger_scale.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"raw figures: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
