"""The client over several controller URLs (replicas): a request goes to the one that
answered last, on to the next at once when that one is unreachable or answers
502/503/504, and the client stays with the one that answered; a refusal is not tried
elsewhere. Real HTTP on local ports (tests/standin.py), real signatures, real munged."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from hpresil import auth
from hpresil.adapters import munge
from hpresil.auth import BearerToken, NodeKey, NodeSignature
from hpresil.client import ControllerClient, MungeCredential
from hpresil.errors import ControllerFailed, ControllerUnavailable, RejectedByController
from hpresil.vocab import Report
from tests.standin import Answering, Closed, Seen, Silent

pytest_plugins = ["tests.munged"]

ACK = {"accepted": True, "duplicate": False}
Stands = Callable[..., Any]


@pytest.fixture
def stand() -> Iterator[Stands]:
    """``stand(Kind, ...)``: a stand-in controller, closed after the test."""
    made: list[Any] = []

    def make(kind: type, *args: Any, **kwargs: Any) -> Any:
        made.append(kind(*args, **kwargs))
        return made[-1]

    yield make
    for one in made:
        one.close()


def client(*stands: Any, timeout: float = 5.0) -> ControllerClient:
    return ControllerClient([s.url for s in stands], BearerToken("t0ken"), timeout=timeout)


def report() -> Report:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    return Report(report_id=uuid.uuid4().hex, node="node1", seq=1, sent_at=at)


def test_one_url_is_one_controller_as_before(stand: Stands) -> None:
    up = stand(Answering, 200, [])
    assert ControllerClient(up.url + "/", BearerToken("t0ken")).nodes() == []
    assert [s.target for s in up.seen] == ["/v1/nodes"]


def test_a_refused_connection_sends_the_request_to_the_next(stand: Stands) -> None:
    down, up = stand(Closed), stand(Answering, 200, [])
    assert client(down, up).nodes(unhealthy=True) == []
    assert [s.target for s in up.seen] == ["/v1/nodes?unhealthy=true"]


def test_the_client_stays_with_the_controller_that_answered(stand: Stands) -> None:
    gone, up = stand(Silent, hangup=True), stand(Answering, 200, [])
    ctl = client(gone, up)
    for _ in range(3):
        assert ctl.nodes() == []
    assert (gone.connections, len(up.seen)) == (1, 3)  # the first tried once only


def test_a_controller_that_does_not_answer_in_time_is_passed_over(stand: Stands) -> None:
    hung, up = stand(Silent, hangup=False), stand(Answering, 200, ACK)
    ctl = client(hung, up, timeout=0.5)
    assert ctl.post_report(report()).accepted
    assert ctl.post_report(report()).accepted
    assert (hung.connections, len(up.seen)) == (1, 2)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_gateway_or_busy_answer_sends_the_same_request_on(stand: Stands, status: int) -> None:
    busy, up = stand(Answering, status), stand(Answering, 200, ACK)
    ctl = client(busy, up)
    sent = report()
    assert ctl.post_report(sent).accepted
    (first,), (second,) = busy.seen, up.seen
    assert (first.method, first.target, first.body) == (second.method, second.target, second.body)
    assert ctl.post_report(report()).accepted
    assert (len(busy.seen), len(up.seen)) == (1, 2)  # stays with the one that answered


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, RejectedByController),
        (404, RejectedByController),
        (422, RejectedByController),
        (429, ControllerUnavailable),
        (500, ControllerFailed),
    ],
)
def test_an_answer_about_the_request_is_not_tried_elsewhere(
    stand: Stands, status: int, error: type[Exception]
) -> None:
    first, other = stand(Answering, status), stand(Answering, 200, ACK)
    with pytest.raises(error):
        client(first, other).post_report(report())
    assert (len(first.seen), other.seen) == (1, [])


def test_a_controller_that_refused_after_a_failover_is_the_one_kept(stand: Stands) -> None:
    gone, refusing = stand(Silent, hangup=True), stand(Answering, 422)
    ctl = client(gone, refusing)
    for _ in range(2):
        with pytest.raises(RejectedByController):
            ctl.post_report(report())
    assert (gone.connections, len(refusing.seen)) == (1, 2)


def test_when_none_can_serve_the_error_names_each_url(stand: Stands) -> None:
    down, busy, gone = stand(Closed), stand(Answering, 503), stand(Silent, hangup=True)
    with pytest.raises(ControllerUnavailable) as caught:
        client(down, busy, gone).nodes()
    text = str(caught.value)
    assert f"controller {down.url} unreachable: " in text
    assert f"controller {busy.url} answered 503: answer 503" in text
    assert f"controller {gone.url} unreachable: " in text
    assert "\n" not in text
    assert (len(busy.seen), gone.connections) == (1, 1)  # each tried once


def test_the_next_request_starts_again_where_the_last_one_was_served(stand: Stands) -> None:
    a, b = stand(Answering, 503), stand(Answering, 200, [])
    ctl = client(a, b)
    assert ctl.nodes() == []
    b.status = 503
    a.status, a.answer = 200, []
    assert ctl.nodes() == []  # b first (it answered last), then round to a
    assert ctl.nodes() == []  # a now
    assert (len(a.seen), len(b.seen)) == (3, 2)


def test_a_nodes_request_is_signed_afresh_for_each_controller(stand: Stands) -> None:
    key = auth.node_key("c" * 32, "node1")
    busy, up = stand(Answering, 503), stand(Answering, 200, ACK)

    def verified(seen: Seen) -> None:
        scheme, _, fields = seen.authorization.partition(" ")
        s = NodeSignature.parse(fields)
        expected = auth.request_signature(
            key, seen.method, seen.target, s.node, s.ts, s.nonce, seen.body
        )
        assert (scheme, s.sig) == (auth.NODE_SCHEME, expected)

    busy.check = up.check = verified
    ctl = ControllerClient([busy.url, up.url], NodeKey("node1", key))
    assert ctl.post_report(report()).accepted
    assert (busy.refused, up.refused) == ([], [])
    nonces = {NodeSignature.parse(s.authorization.partition(" ")[2]).nonce for s in busy.seen}
    nonces |= {NodeSignature.parse(s.authorization.partition(" ")[2]).nonce for s in up.seen}
    assert len(nonces) == 2  # a replica that saw the first could not refuse the second


def test_a_person_gets_a_new_munge_credential_for_each_controller(
    stand: Stands, munge_socket: str
) -> None:
    """Two replicas on one host share its munged, which decodes a credential once."""
    busy, up = stand(Answering, 503), stand(Answering, 200, [])

    def decoded(seen: Seen) -> None:
        credential = seen.authorization.removeprefix(f"{auth.MUNGE_SCHEME} ")
        made_for = auth.MungePayload.parse(munge.decode(credential, socket=munge_socket).payload)
        assert (made_for.method, made_for.target) == (seen.method, seen.target)

    busy.check = up.check = decoded
    assert ControllerClient([busy.url, up.url], MungeCredential(munge_socket)).nodes() == []
    assert (busy.refused, up.refused) == ([], [])
    first = busy.seen[0].authorization.removeprefix(f"{auth.MUNGE_SCHEME} ")
    with pytest.raises(munge.MungeRefused, match="replayed"):  # sent twice, refused
        munge.decode(first, socket=munge_socket)
