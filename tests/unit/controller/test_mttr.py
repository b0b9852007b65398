"""MTTR per rung of the recovery ladder (:mod:`hpresil.controller.mttr`) over a ledger
written with the store's models, on SQLite and PostgreSQL, and ``GET /v1/stats/mttr``.

The ledger, incidents detected a few days before ``T0`` (times in minutes after each
incident's detection; the drain a minute after it):

* ``rebooted``: reboot 2-12 passed, burn-in 12-32 passed, resume 32-33 passed;
* ``reset_failed``: reset_gpu 2-3 failed, reboot 3-13 passed, burn-in 13-43 passed,
  resume 43-45 passed (cleared by the reboot);
* ``replaced``: reboot 2-12 passed, burn-in 12-40 failed, replace 40-41 passed, open;
* ``by_hand``: reboot 2-50 stopped, resolved by an operator's resume at 90;
* ``open``: reboot from 2, still running;
* a watch incident that never drained the node (not in the ledger);
* ``old``, detected 40 days before: reset_gpu 2-3 passed, burn-in 3-23 passed, resume
  23-24 passed (cleared by the reset; only in a window of 45 days).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from hpresil.controller import mttf, mttr
from hpresil.controller.mttr import Case, Step
from hpresil.store import Store
from hpresil.store.models import IncidentRow, NodeRow, RecoveryStepRow, Rung, StepStatus
from hpresil.vocab import Action, Category
from tests.unit.controller.fakes import T0, FakeClock

MIN = 60.0


@dataclass(frozen=True)
class Did:
    rung: Rung
    status: StepStatus
    start: float  # minutes after detection
    end: float | None = None


def incident(
    node: str,
    category: Category,
    detected: datetime,
    steps: list[Did],
    *,
    resolved: float | None = None,
    drained: bool = True,
) -> IncidentRow:
    def at(minutes: float) -> datetime:
        return detected + timedelta(minutes=minutes)

    row = IncidentRow(
        node=node,
        status="open" if resolved is None else "resolved",
        category=category,
        action=Action.REBOOT if drained else Action.WATCH,
        hardware=category.is_hardware,
        observed_at=detected,
        detected_at=detected,
        drained_at=at(1) if drained else None,
        resolved_at=None if resolved is None else at(resolved),
    )
    row.recovery = [
        RecoveryStepRow(
            rung=d.rung,
            status=d.status,
            why="test",
            started_at=at(d.start),
            ended_at=None if d.end is None else at(d.end),
        )
        for d in steps
    ]
    return row


LEDGER = {
    "rebooted": (
        Category.GPU_FW_GSP,
        5,
        [
            Did("reboot", "passed", 2, 12),
            Did("burnin", "passed", 12, 32),
            Did("resume", "passed", 32, 33),
        ],
        33,
    ),
    "reset_failed": (
        Category.GPU_HANG,
        4,
        [
            Did("reset_gpu", "failed", 2, 3),
            Did("reboot", "passed", 3, 13),
            Did("burnin", "passed", 13, 43),
            Did("resume", "passed", 43, 45),
        ],
        45,
    ),
    "replaced": (
        Category.HBM_ECC,
        3,
        [
            Did("reboot", "passed", 2, 12),
            Did("burnin", "failed", 12, 40),
            Did("replace", "passed", 40, 41),
        ],
        None,
    ),
    "by_hand": (Category.GPU_HANG, 2, [Did("reboot", "stopped", 2, 50)], 90),
    "open": (Category.PCIE_LINK, 1, [Did("reboot", "running", 2)], None),
    "old": (
        Category.GPU_HANG,
        40,
        [
            Did("reset_gpu", "passed", 2, 3),
            Did("burnin", "passed", 3, 23),
            Did("resume", "passed", 23, 24),
        ],
        24,
    ),
}


def write(store: Store) -> None:
    """:data:`LEDGER`, and a watch incident that never drained its node."""
    with store.write() as s:
        for name in [*LEDGER, "watched"]:
            s.add(NodeRow(name=name, first_seen_at=T0 - timedelta(days=60)))
        s.flush()
        for name, (category, days, steps, resolved) in LEDGER.items():
            s.add(incident(name, category, T0 - timedelta(days=days), steps, resolved=resolved))
        s.add(
            incident("watched", Category.THERMAL_POWER, T0 - timedelta(days=1), [], drained=False)
        )


@pytest.fixture
def ledger(store: Store) -> Store:
    write(store)
    return store


def test_each_rung_counts_its_steps_and_the_time_in_it(ledger: Store) -> None:
    view = mttr.from_ledger(ledger, now=T0)
    assert view.since == T0 - timedelta(days=30) and view.until == T0
    rungs = {r.rung: r for r in view.rungs}
    assert list(rungs) == ["reset_gpu", "reboot", "burnin", "resume", "replace"]
    reboot = rungs["reboot"]
    ended = (reboot.passed, reboot.failed, reboot.stopped, reboot.running)
    assert reboot.steps == 5 and ended == (3, 0, 1, 1)
    # ended: 10, 10, 10 and 48 minutes; the running one has no time yet
    assert reboot.took.n == 4 and reboot.took.p50_s == 10 * MIN
    assert reboot.took.mean_s == pytest.approx(19.5 * MIN)
    assert reboot.took.p95_s == pytest.approx((10 + 0.85 * 38) * MIN)  # inclusive
    reset = rungs["reset_gpu"]
    assert (reset.steps, reset.failed, reset.took.n, reset.took.p95_s) == (1, 1, 1, MIN)
    burnin = rungs["burnin"]
    assert (burnin.steps, burnin.passed, burnin.failed) == (3, 2, 1)
    assert burnin.took.p50_s == 28 * MIN
    assert (rungs["resume"].passed, rungs["resume"].took.mean_s) == (2, 1.5 * MIN)
    assert (rungs["replace"].steps, rungs["replace"].passed) == (1, 1)


def test_each_category_splits_its_incidents_by_how_they_ended(ledger: Store) -> None:
    view = mttr.from_ledger(ledger, now=T0)
    rows = {r.key: r for r in view.categories}
    assert list(rows) == ["gpu_fw_gsp", "gpu_hang", "hbm_ecc", "pcie_link"]
    fw = rows["gpu_fw_gsp"]
    assert (fw.incidents, fw.back) == (1, 1)
    assert (fw.mttr.p50_s, fw.mttr_from_drain.p50_s) == (33 * MIN, 32 * MIN)
    hang = rows["gpu_hang"]
    assert (hang.incidents, hang.back, hang.by_hand, hang.replaced, hang.open) == (2, 1, 1, 0, 0)
    assert hang.mttr.mean_s == 45 * MIN and hang.by_hand_mttr.mean_s == 90 * MIN
    assert (rows["hbm_ecc"].replaced, rows["hbm_ecc"].back, rows["hbm_ecc"].open) == (1, 0, 0)
    assert (rows["pcie_link"].open, rows["pcie_link"].mttr.n) == (1, 0)
    assert rows["pcie_link"].mttr.p50_s is None and rows["pcie_link"].mttr.mean_s is None
    total = view.total
    assert total.key == "all" and total.incidents == 5  # the watch never drained its node
    assert (total.back, total.by_hand, total.replaced, total.open) == (2, 1, 1, 1)
    assert total.mttr.p50_s == 39 * MIN and total.mttr_from_drain.mean_s == 38 * MIN


def test_cleared_by_names_the_last_remedy_before_the_burn_in(ledger: Store) -> None:
    cleared = {c.rung: c for c in mttr.from_ledger(ledger, now=T0).cleared_by}
    assert list(cleared) == ["reset_gpu", "reboot", None]
    assert cleared["reboot"].incidents == 2  # one after a failed reset
    assert cleared["reboot"].mttr.mean_s == 39 * MIN
    assert cleared["reset_gpu"].incidents == 0 and cleared[None].incidents == 0


def test_the_window_picks_the_incidents_by_detection(ledger: Store) -> None:
    wide = mttr.from_ledger(ledger, now=T0, since=T0 - timedelta(days=45))
    assert wide.total.incidents == 6 and wide.total.back == 3
    cleared = {c.rung: c.incidents for c in wide.cleared_by}
    assert cleared == {"reset_gpu": 1, "reboot": 2, None: 0}
    assert {r.rung: r.passed for r in wide.rungs}["reset_gpu"] == 1
    narrow = mttr.from_ledger(ledger, now=T0, since=T0 - timedelta(days=3, hours=1))
    assert [r.key for r in narrow.categories] == ["gpu_hang", "hbm_ecc", "pcie_link"]
    assert (narrow.total.incidents, narrow.total.back) == (3, 0)
    earlier = mttr.from_ledger(ledger, now=T0 - timedelta(days=4, hours=12))
    assert earlier.total.incidents == 1 and earlier.total.back == 1  # "rebooted" alone


def test_an_empty_window_has_every_rung_and_no_figures(store: Store) -> None:
    view = mttr.from_ledger(store, now=T0)
    assert [r.steps for r in view.rungs] == [0] * 5 and view.categories == []
    assert view.total.incidents == 0 and view.total.mttr.p95_s is None
    assert [c.incidents for c in view.cleared_by] == [0, 0, 0]


def ladder(*steps: tuple[Rung, StepStatus]) -> Case:
    """An incident of T0 whose steps all ended at T0."""
    return Case(
        Category.GPU_HANG,
        T0,
        T0,
        steps=tuple(Step(rung, status, T0, T0) for rung, status in steps),
    )


def test_cleared_by_a_burn_in_alone_and_by_a_resume_without_burn_in() -> None:
    burnin_only = ladder(("burnin", "passed"), ("resume", "passed"))
    assert burnin_only.fate == "back" and burnin_only.cleared_by is None
    late = ladder(  # a reboot that passed after the burn-in does not count
        ("reset_gpu", "passed"), ("burnin", "passed"), ("reboot", "passed"), ("resume", "passed")
    )
    assert late.cleared_by == "reset_gpu"
    assert ladder(("reboot", "passed"), ("resume", "passed")).cleared_by == "reboot"
    replaced = ladder(("reboot", "failed"), ("replace", "running"))
    assert replaced.fate == "replaced" and replaced.back_at is None


def test_the_api_answers_mttr_and_mttf_as_before(
    ledger: Store, client: TestClient, clock: FakeClock
) -> None:
    assert clock() == T0
    view = client.get("/v1/stats/mttr").json()
    assert view == json.loads(mttr.from_ledger(ledger, now=T0).model_dump_json())
    assert view["total"]["back"] == 2 and view["since"] == "2026-10-23T08:00:00Z"
    assert view["cleared_by"][2] == {
        "rung": None,
        "incidents": 0,
        "mttr": {"n": 0, "p50_s": None, "p95_s": None, "mean_s": None},
    }
    wide = client.get("/v1/stats/mttr", params={"since": "2026-10-08T08:00:00"}).json()
    assert wide["total"]["incidents"] == 6 and wide["since"] == "2026-10-08T08:00:00Z"
    ahead = client.get("/v1/stats/mttr", params={"since": "2026-11-23T00:00:00Z"})
    assert ahead.status_code == 422
    assert ahead.json() == {"detail": "query.since: must be between 2000-01-01T00:00:00Z and now"}
    assert client.get("/v1/stats/mttr", headers={"Authorization": ""}).status_code == 401
    for by in ("all", "node", "category"):
        served = client.get("/v1/stats/mttf", params={"by": by}).json()
        assert served == json.loads(mttf.from_ledger(ledger, now=T0, by=by).model_dump_json())
    assert client.get("/v1/stats/mttf", params={"since": "1999-12-31T00:00:00Z"}).status_code == 422
    assert client.get("/v1/stats/mttf", headers={"Authorization": ""}).status_code == 401
