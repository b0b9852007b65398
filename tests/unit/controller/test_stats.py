"""MTTF and MTTR over hand-computable ledgers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hpresil.controller.stats import IncidentSpan, NodeSpan, mttf
from hpresil.vocab import Category

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


NODES = [NodeSpan("a", T0), NodeSpan("b", T0), NodeSpan("c", T0)]
NOW = h(100)


def test_three_nodes_two_failures_minus_downtime() -> None:
    incidents = [
        IncidentSpan("a", Category.GPU_LOST_PCIE, h(10), drained_at=h(10), resolved_at=h(14)),
        IncidentSpan("b", Category.HBM_ECC, h(90), drained_at=h(90)),  # still out: 10 h
    ]
    view = mttf(NODES, incidents, now=NOW)
    (row,) = view.rows
    assert row == view.total
    assert row.key == "all" and row.nodes == 3
    assert row.exposure_h == pytest.approx(300 - 4 - 10)
    assert row.failures == 2 and row.mttf_h == pytest.approx(143.0)
    assert row.repairs == 1 and row.mttr_h == pytest.approx(4.0)


def test_no_failures_no_mttf_but_exposure_counts() -> None:
    operator = IncidentSpan("a", Category.OPERATOR, h(50), drained_at=h(50), resolved_at=h(60))
    app = IncidentSpan("b", Category.APP, h(70))
    view = mttf(NODES, [operator, app], now=NOW)
    assert view.total.failures == 0 and view.total.mttf_h is None
    assert view.total.exposure_h == pytest.approx(290.0)  # operator downtime counts as downtime
    assert view.total.repairs == 1 and view.total.mttr_h == pytest.approx(10.0)


def test_by_node_is_censored() -> None:
    late = NodeSpan("d", h(80))  # joined the fleet late: 20 h of exposure
    incidents = [IncidentSpan("a", Category.GPU_HANG, h(30), drained_at=h(30), resolved_at=h(32))]
    view = mttf([*NODES, late], incidents, now=NOW, by="node")
    rows = {r.key: r for r in view.rows}
    assert list(rows) == ["a", "b", "c", "d"]
    assert (rows["a"].exposure_h, rows["a"].failures, rows["a"].mttf_h) == (98.0, 1, 98.0)
    assert (rows["b"].exposure_h, rows["b"].mttf_h) == (100.0, None)
    assert rows["d"].exposure_h == 20.0
    assert view.total.exposure_h == 318.0 and view.total.mttf_h == 318.0


def test_by_category_shares_the_fleet_exposure() -> None:
    incidents = [
        IncidentSpan("a", Category.HBM_ECC, h(10)),
        IncidentSpan("b", Category.HBM_ECC, h(20)),
        IncidentSpan("c", Category.NVLINK_NVSWITCH, h(30)),
        IncidentSpan("c", Category.APP, h(40)),
    ]
    view = mttf(NODES, incidents, now=NOW, by="category")
    rows = {r.key: r for r in view.rows}
    assert list(rows) == ["app", "hbm_ecc", "nvlink_nvswitch"]
    assert rows["hbm_ecc"].failures == 2 and rows["hbm_ecc"].mttf_h == 150.0
    assert rows["nvlink_nvswitch"].mttf_h == 300.0
    assert rows["app"].failures == 0 and rows["app"].nodes == 3
    assert view.total.failures == 3 and view.total.mttf_h == 100.0


def test_a_window_clips_exposure_downtime_and_failures() -> None:
    incidents = [
        IncidentSpan("a", Category.HBM_ECC, h(10), drained_at=h(10), resolved_at=h(14)),
        IncidentSpan("b", Category.HBM_ECC, h(48), drained_at=h(48), resolved_at=h(52)),
    ]
    view = mttf(NODES, incidents, now=NOW, since=h(50))
    assert view.since == h(50) and view.until == NOW
    assert view.total.exposure_h == pytest.approx(150 - 2)
    assert view.total.failures == 0  # detected before the window
    assert view.total.repairs == 1  # resolved inside it


def test_overlapping_downtime_counts_once() -> None:
    incidents = [
        IncidentSpan("a", Category.HBM_ECC, h(10), drained_at=h(10), resolved_at=h(20)),
        IncidentSpan("a", Category.OPERATOR, h(15), drained_at=h(15), resolved_at=h(25)),
    ]
    view = mttf([NODES[0]], incidents, now=NOW)
    assert view.total.exposure_h == pytest.approx(85.0)


def test_an_empty_fleet() -> None:
    view = mttf([], [], now=NOW, by="node")
    assert view.rows == [] and view.total.exposure_h == 0.0 and view.total.mttf_h is None
