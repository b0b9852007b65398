"""The pure job rules: budgets, hangs, idle stretches, blame, exclusions, lost work."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hpresil.config import JobsConfig
from hpresil.controller.jobs import rules
from tests.unit.controller.fakes import T0


def test_the_jobs_own_budget_wins_and_the_budget_is_inclusive() -> None:
    cfg = JobsConfig(restart_budget=5)
    assert rules.budget_of(None, cfg) == 5 and rules.budget_of(0, cfg) == 0
    assert not rules.over_budget(4, 5) and rules.over_budget(5, 5)


def test_a_hang_counts_from_the_last_sign_of_life() -> None:
    started = T0
    progress = T0 + timedelta(seconds=100)
    last = rules.last_sign_of_life(progress, started, T0)
    assert last == progress
    assert not rules.hung(last, 600, progress + timedelta(seconds=600))
    assert rules.hung(last, 600, progress + timedelta(seconds=601))
    assert not rules.hung(last, 0, progress + timedelta(days=9))  # 0: never
    assert rules.last_sign_of_life(None, None, T0) == T0


def test_idle_stretches_start_once_and_end_on_any_use() -> None:
    since = rules.next_idle_since(None, 1.0, 5.0, T0)
    assert since == T0
    assert rules.next_idle_since(since, 0.0, 5.0, T0 + timedelta(seconds=60)) == T0
    assert rules.next_idle_since(since, None, 5.0, T0) == T0  # no reading: unchanged
    assert rules.next_idle_since(since, 5.0, 5.0, T0) is None
    assert rules.idle(T0, 900, T0 + timedelta(seconds=900))
    assert not rules.idle(T0, 900, T0 + timedelta(seconds=899))


def test_usage_weights_gpus_and_ignores_stale_nodes() -> None:
    now = T0 + timedelta(seconds=30)
    usage = {
        "n1": {"util": 10.0, "gpus": 8, "at": T0.isoformat()},
        "n2": {"util": 90.0, "gpus": 2, "at": T0.isoformat()},
        "n3": {"util": 100.0, "gpus": 8, "at": (T0 - timedelta(hours=1)).isoformat()},
    }
    assert rules.usage_util(usage, now, fresh_s=60) == pytest.approx((80 + 180) / 10)
    assert rules.usage_util({}, now, fresh_s=60) is None


def test_blame_needs_that_many_different_nodes() -> None:
    assert not rules.blamed("n3", {"n1"}, 3)
    assert rules.blamed("n3", {"n1", "n2"}, 3)
    assert not rules.blamed("n3", {"n3", "n1"}, 3)  # the same node twice is one node


@pytest.mark.parametrize(
    ("suspects", "usable", "need", "avoid"),
    [
        ({"n2"}, {"n2", "n3", "n4"}, 1, {"n1", "n2"}),
        ({"n2", "n3"}, {"n2", "n3", "n4"}, 2, {"n1"}),  # suspects would starve the job
        ({"n2"}, set(), 1, {"n1"}),  # usable nodes unknown: only the failed node
    ],
)
def test_exclusions_never_starve_the_job(
    suspects: set[str], usable: set[str], need: int, avoid: set[str]
) -> None:
    assert rules.nodes_to_avoid("n1", suspects, usable, need) == avoid


def test_lost_work_is_since_the_checkpoint_else_since_the_start() -> None:
    at = T0 + timedelta(seconds=90)
    assert rules.lost_work_s(at, T0 + timedelta(seconds=60), T0) == 30.0
    assert rules.lost_work_s(at, None, T0) == 90.0
    assert rules.lost_work_s(at, None, None) is None
