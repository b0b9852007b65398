"""Delivery over real HTTP: how the client reads the controller's answers, and what
the spool does with them (a stand-in controller on a local port)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hpresil.agent.spool import Spool
from hpresil.auth import BearerToken
from hpresil.client import ControllerClient
from hpresil.errors import ControllerFailed, ControllerUnavailable, RejectedByController
from hpresil.vocab import Report

AT = datetime(2026, 3, 1, tzinfo=UTC)
ACK = {"accepted": True, "duplicate": False}

Answer = Callable[[dict[str, Any]], int | None]  # a report's body -> status (None: cut short)


class StandIn:
    """Answers each POSTed report with ``answer(body)``; records the seq of each."""

    def __init__(self) -> None:
        self.answer: Answer = lambda body: 200
        self.seqs: list[int] = []
        self.stored: list[int] = []
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                me.seqs.append(body["seq"])
                status = me.answer(body)
                if status is None:  # promise a body, send part of it, hang up
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(b'{"accepted"')
                    return
                if status == 200:
                    me.stored.append(body["seq"])
                payload = json.dumps(ACK if status == 200 else {"detail": f"answer {status}"})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def controller() -> Iterator[StandIn]:
    stand_in = StandIn()
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()


def _report(seq: int) -> Report:
    return Report(report_id=uuid.uuid4().hex, node="node1", seq=seq, sent_at=AT)


def _client(controller: StandIn) -> ControllerClient:
    return ControllerClient(controller.url, BearerToken("t0ken"), timeout=5.0)


@pytest.mark.parametrize("status", [502, 503, 504, 429, 408])
def test_gateway_and_busy_answers_mean_unavailable(controller: StandIn, status: int) -> None:
    controller.answer = lambda body: status
    with pytest.raises(ControllerUnavailable, match=f"answered {status}"):
        _client(controller).post_report(_report(1))


@pytest.mark.parametrize("status", [500, 501, 507])
def test_other_server_errors_are_a_failure_on_this_request(
    controller: StandIn, status: int
) -> None:
    controller.answer = lambda body: status
    with pytest.raises(ControllerFailed) as caught:
        _client(controller).post_report(_report(1))
    assert caught.value.status_code == status
    assert str(caught.value) == f"controller failed on the request ({status}): answer {status}"
    assert not isinstance(caught.value, ControllerUnavailable | RejectedByController)


def test_an_invalid_report_is_refused(controller: StandIn) -> None:
    controller.answer = lambda body: 422
    with pytest.raises(RejectedByController) as caught:
        _client(controller).post_report(_report(1))
    assert caught.value.status_code == 422


def test_an_answer_cut_short_means_unavailable(controller: StandIn) -> None:
    controller.answer = lambda body: None
    with pytest.raises(ControllerUnavailable, match="unreachable"):
        _client(controller).post_report(_report(1))


def _spool(tmp_path: Path, n: int) -> Spool:
    spool = Spool(tmp_path)
    for _ in range(n):
        spool.put(_report(spool.next_seq()))
    return spool


def test_a_500_on_one_report_lets_the_others_through(controller: StandIn, tmp_path: Path) -> None:
    spool = _spool(tmp_path, 3)
    controller.answer = lambda body: 500 if body["seq"] == 1 else 200
    result = spool.flush(_client(controller))
    assert (result.delivered, result.deferred, result.remaining, result.error) == (2, 1, 1, None)
    assert controller.stored == [2, 3]
    assert len(spool) == 1


def test_a_503_pauses_delivery_at_the_head(controller: StandIn, tmp_path: Path) -> None:
    spool = _spool(tmp_path, 3)
    controller.answer = lambda body: 503
    result = spool.flush(_client(controller))
    assert (result.delivered, result.deferred, result.remaining) == (0, 0, 3)
    assert result.error and "503" in result.error
    assert controller.seqs == [1]
    controller.answer = lambda body: 200
    assert spool.flush(_client(controller)).delivered == 3
    assert controller.stored == [1, 2, 3]
