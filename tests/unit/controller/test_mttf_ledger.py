"""MTTF summed by the database equals the pure computation, on SQLite and PostgreSQL.

Random ledgers with everything the definitions turn on: overlapping downtime (an
operator's drain during a fault's), incidents still open, a job's and a shared
component's incidents, nodes first seen late (one with a drain from before), nodes
Slurm never listed, a repair logged before its drain, windows that cut through
downtime, one that begins before the first node (SQLite: summed from what it indexed,
then again for the nodes with incidents not wholly in the window). The database path
(:func:`hpresil.controller.mttf.from_ledger`) and :func:`hpresil.controller.stats.mttf`
over the same rows must give the same rows.
SQLite works to the millisecond, hence the tolerance (0.36 s in hours; a wrong
interval is minutes to hours).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from hpresil.api import MttfRow, MttfView
from hpresil.controller import mttf, stats
from hpresil.store import Store, repo
from hpresil.store.models import IncidentRow, NodeRow, SharedFaultRow
from hpresil.vocab import Action, Category

NOW = datetime(2026, 12, 6, 12, 0, 0, 123456, tzinfo=UTC)
START = NOW - timedelta(days=30)
TOLERANCE_H = 1e-4


def at(rng: random.Random, lo: datetime, hi: datetime) -> datetime:
    return lo + timedelta(microseconds=rng.randrange(int((hi - lo).total_seconds() * 1e6)))


def fleet(store: Store, seed: int) -> None:
    """A random ledger: 12 nodes, 2 of them never listed by Slurm, a few incidents each."""
    rng = random.Random(seed)
    with store.write() as s:
        s.add(
            SharedFaultRow(
                id=1,
                kind="switch",
                component="leaf1",
                category=Category.HBM_ECC,
                size=4,
                nodes=[],
                why="x",
                opened_at=START,
            )
        )
        for n in range(12):
            node = NodeRow(name=f"n{n}", first_seen_at=START, drained_by_hpresil=False)
            node.first_seen_at = at(rng, START, NOW - timedelta(days=5)) if n % 4 == 3 else START
            node.slurm_seen_at = None if n in (5, 9) else NOW
            s.add(node)
        s.flush()
        for n in range(12):
            for _ in range(rng.randint(0, 8)):
                s.add(incident(rng, f"n{n}"))
        s.add(overlap("n1", START + timedelta(days=3)))
        s.add(overlap("n2", START + timedelta(days=7), still_open=True))
        early = incident(rng, "n3")  # a drain before n3 was first seen
        early.detected_at = early.drained_at = START + timedelta(hours=1)
        early.resolved_at = START + timedelta(days=40)
        s.add(early)
        older = incident(rng, "n6")  # before any node: a window from 45 days back cuts it
        older.detected_at = older.drained_at = START - timedelta(days=20)
        older.status, older.resolved_at = "resolved", START - timedelta(days=10)
        s.add(older)


def incident(rng: random.Random, node: str) -> IncidentRow:
    detected = at(rng, START, NOW)
    category = rng.choice(list(Category))
    drained = detected + timedelta(seconds=rng.uniform(0, 90)) if rng.random() < 0.7 else None
    resolved = (drained or detected) + timedelta(hours=rng.uniform(0.1, 60))
    if rng.random() < 0.15 or resolved > NOW:
        resolved = None
    elif drained is not None and rng.random() < 0.05:
        resolved = drained - timedelta(minutes=5)  # a clock that went back
    return IncidentRow(
        node=node,
        status="open" if resolved is None else "resolved",
        category=category,
        action=Action.DRAIN,
        hardware=category.is_hardware,
        observed_at=detected,
        detected_at=detected,
        drained_at=drained,
        resolved_at=resolved,
        job_id=rng.randint(1, 99) if rng.random() < 0.15 else None,
        shared_id=1 if rng.random() < 0.1 else None,
    )


def overlap(node: str, start: datetime, still_open: bool = False) -> IncidentRow:
    """A fault's downtime with an operator's drain inside it."""
    return IncidentRow(
        node=node,
        status="resolved",
        category=Category.OPERATOR,
        action=Action.DRAIN,
        hardware=False,
        observed_at=start,
        detected_at=start,
        drained_at=start,
        resolved_at=None if still_open else start + timedelta(hours=30),
    )


def pure(store: Store, by: stats.By, since: datetime | None) -> MttfView:
    """What the controller computed before: every row loaded, then stats.mttf."""
    with store.read() as s:
        nodes = repo.nodes(s)
        listed = [r for r in nodes if r.slurm_seen_at is not None] or list(nodes)
        names = {r.name for r in listed}
        spans = [
            stats.IncidentSpan(
                node=i.node,
                category=i.category,
                detected_at=i.detected_at,
                drained_at=i.drained_at,
                resolved_at=i.resolved_at,
                job=i.job_id is not None,
                shared=i.shared_id is not None,
            )
            for i in repo.incidents(s, details=False)
            if i.node in names
        ]
    counted = [stats.NodeSpan(r.name, r.first_seen_at) for r in listed]
    return stats.mttf(counted, spans, now=NOW, by=by, since=since)


def summed(store: Store, by: stats.By, since: datetime | None) -> MttfView:
    return mttf.from_ledger(store, now=NOW, by=by, since=since)


def same(a: MttfRow, b: MttfRow) -> None:
    assert (a.key, a.nodes, a.failures, a.repairs) == (b.key, b.nodes, b.failures, b.repairs)
    for name in ("exposure_h", "mttf_h", "mttr_h"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x == pytest.approx(y, abs=TOLERANCE_H, rel=1e-9), (a.key, name)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("by", ["all", "node", "category"])
@pytest.mark.parametrize("days", [None, 45, 20, 2])
def test_the_database_sums_what_stats_computes(
    store: Store, seed: int, by: stats.By, days: int | None
) -> None:
    fleet(store, seed)
    since = None if days is None else NOW - timedelta(days=days, seconds=seed)
    want, got = pure(store, by, since), summed(store, by, since)
    assert (got.by, got.since, got.until) == (want.by, want.since, want.until)
    assert [r.key for r in got.rows] == [r.key for r in want.rows]
    for a, b in zip(got.rows, want.rows, strict=True):
        same(a, b)
    same(got.total, want.total)


def test_overlapping_downtime_counts_once_in_the_database(store: Store) -> None:
    with store.write() as s:
        s.add(NodeRow(name="a", first_seen_at=START, drained_by_hpresil=False))
        s.flush()
        s.add(overlap("a", START + timedelta(hours=10)))  # 10 h .. 40 h
        late = overlap("a", START + timedelta(hours=20))  # 20 h .. 50 h
        s.add(late)
    view = summed(store, "node", None)
    span_h = (NOW - START).total_seconds() / 3600
    assert view.rows[0].exposure_h == pytest.approx(span_h - 40, abs=TOLERANCE_H)
    assert view.rows[0].repairs == 2 and view.rows[0].mttr_h == pytest.approx(30.0)


def test_nodes_slurm_never_listed_are_left_out_with_their_incidents(store: Store) -> None:
    with store.write() as s:
        s.add(NodeRow(name="a", first_seen_at=START, drained_by_hpresil=False, slurm_seen_at=NOW))
        s.add(NodeRow(name="ghost", first_seen_at=START, drained_by_hpresil=False))
        s.flush()
        for node in ("a", "ghost", "ghost"):
            s.add(repo.new_incident(s, node, START + timedelta(days=1), category=Category.HBM_ECC))
    for by in ("all", "category"):
        view = summed(store, by, None)
        assert view.total.nodes == 1 and view.total.failures == 1
        assert [r.failures for r in view.rows] == [1]


def test_a_repair_that_ends_where_the_window_starts(store: Store) -> None:
    """Counted as a repair (the window holds its end), none of its downtime inside."""
    since = NOW - timedelta(days=2)
    with store.write() as s:
        s.add(NodeRow(name="a", first_seen_at=START, drained_by_hpresil=False))
        s.flush()
        fault = overlap("a", since - timedelta(hours=2))
        fault.resolved_at = since
        s.add(fault)
    want, got = pure(store, "all", since), summed(store, "all", since)
    same(got.total, want.total)
    assert got.total.repairs == 1 and got.total.exposure_h == pytest.approx(48.0)
