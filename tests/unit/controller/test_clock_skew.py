"""Agent clocks running ahead of the controller's: a warning, once per node a while,
below the limit past which reports are refused (issue 9: time done right)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from hpresil.controller.skew import SkewWatch
from tests.unit.controller.fakes import T0, FakeClock, report, result


def post_sent(client: TestClient, clock: FakeClock, ahead_s: float) -> int:
    rep = report("node1", result(check="ecc", index=0, at=clock()))
    rep = rep.model_copy(update={"sent_at": clock() + timedelta(seconds=ahead_s)})
    return client.post("/v1/reports", json=rep.model_dump(mode="json")).status_code


def skew_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "agent clock" in r.getMessage()]


def test_an_agent_ahead_within_the_limit_is_accepted_and_warned_about_once(
    client: TestClient, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hpresil.controller.skew")
    assert post_sent(client, clock, 10) == 200  # NTP-sized drift: quiet
    assert skew_warnings(caplog) == []
    assert post_sent(client, clock, 120) == 200
    assert post_sent(client, clock, 120) == 200
    (warning,) = skew_warnings(caplog)
    assert warning.startswith("node1: agent clock 120 s ahead")
    assert post_sent(client, clock, 600) == 422  # past max_clock_skew_s: refused


def test_a_node_is_warned_about_again_after_the_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="hpresil.controller.skew")
    watch = SkewWatch(warn_s=30, every_s=600)
    for seconds in (0, 10, 601):  # warned at 0, quiet at 10, warned again at 601
        now = T0 + timedelta(seconds=seconds)
        assert watch.observe("n1", now + timedelta(seconds=60), now) == 60
    assert watch.observe("n1", T0 - timedelta(seconds=900), T0) == -900  # late: quiet
    assert len(skew_warnings(caplog)) == 2
