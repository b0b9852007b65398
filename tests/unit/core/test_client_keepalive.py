"""The client keeps its connection to a controller for the next request (HTTP/1.1
keep-alive), finds one the controller has closed since before using it, and sends a
request that may be repeated once more when the connection closes just as it leaves.
Real HTTP on local ports (tests/standin.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from hpresil.auth import BearerToken, NodeKey
from hpresil.client import ControllerClient
from hpresil.errors import ControllerUnavailable
from hpresil.vocab import Report
from tests.standin import Answering, SecondHangsUp

ACK = {"accepted": True, "duplicate": False}


@pytest.fixture
def kept() -> Iterator[Answering]:
    up = Answering(200, ACK, keepalive=True)
    yield up
    up.close()


def report() -> Report:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    return Report(report_id=uuid.uuid4().hex, node="node1", seq=1, sent_at=at)


def test_reports_share_one_connection(kept: Answering) -> None:
    with ControllerClient(kept.url, BearerToken("t0ken")) as ctl:
        for _ in range(5):
            assert ctl.post_report(report()).accepted
    assert (len(kept.seen), kept.connections) == (5, 1)


def test_a_controller_without_keep_alive_gets_a_connection_per_request() -> None:
    up = Answering(200, ACK, keepalive=False)
    try:
        with ControllerClient(up.url, BearerToken("t0ken")) as ctl:
            for _ in range(3):
                assert ctl.post_report(report()).accepted
        assert (len(up.seen), up.connections) == (3, 3)
    finally:
        up.close()


def test_a_connection_the_controller_closed_while_idle_is_not_used(kept: Answering) -> None:
    with ControllerClient(kept.url, BearerToken("t0ken")) as ctl:
        assert ctl.post_report(report()).accepted
        kept.drop_idle()  # the controller's keep-alive timeout
        kept.answer = {"outcome": "drained", "incident": 1}
        assert ctl.drain("node1", "disk").incident == 1  # not repeatable: sent once, fresh
    assert ([s.method for s in kept.seen], kept.connections) == (["POST", "POST"], 2)


def test_a_report_is_sent_again_when_its_kept_connection_closes_under_it() -> None:
    hangs = SecondHangsUp(ACK)
    try:
        with ControllerClient(hangs.url, NodeKey("node1", "k" * 64)) as ctl:
            assert ctl.post_report(report()).accepted
            assert ctl.post_report(report()).accepted
        # the first connection: a report answered, the next cut off; the second: it again
        assert hangs.requests == ["POST /v1/reports HTTP/1.1"] * 3
        cut, again = hangs.authorizations[1:]
        assert cut != again  # signed afresh: a nonce is good for one request
    finally:
        hangs.close()


def test_a_request_that_may_not_be_repeated_is_not_sent_again() -> None:
    hangs = SecondHangsUp(ACK)
    try:
        with ControllerClient(hangs.url, BearerToken("t0ken")) as ctl:
            ctl.post_report(report())
            with pytest.raises(ControllerUnavailable, match="unreachable"):
                ctl.drain("node1", "disk")
        assert hangs.requests == [
            "POST /v1/reports HTTP/1.1",
            "POST /v1/nodes/node1/drain HTTP/1.1",
        ]
    finally:
        hangs.close()


def test_a_report_cut_off_then_refused_says_both() -> None:
    hangs = SecondHangsUp(ACK)
    with ControllerClient(hangs.url, BearerToken("t0ken")) as ctl:
        assert ctl.post_report(report()).accepted
        hangs.close()  # no new connection is taken: the report's second try is refused
        said = "on a kept connection, then .*refused.* on a new one"
        with pytest.raises(ControllerUnavailable, match=said):
            ctl.post_report(report())
    assert len(hangs.requests) == 2
