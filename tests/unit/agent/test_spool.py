"""The spool: ordered, durable, exactly-once delivery with refusals set aside."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hpresil.agent.spool import Spool
from hpresil.errors import ControllerFailed, RejectedByController
from hpresil.vocab import Report
from tests.unit.agent.fakes import FakeController

AT = datetime(2026, 3, 1, tzinfo=UTC)


def _report(spool: Spool, node: str = "node1") -> Report:
    return Report(report_id=uuid.uuid4().hex, node=node, seq=spool.next_seq(), sent_at=AT)


def _fill(spool: Spool, n: int) -> list[Report]:
    reports = [_report(spool) for _ in range(n)]
    for r in reports:
        spool.put(r)
    return reports


def test_put_writes_one_zero_padded_json_file_per_report(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    (r,) = _fill(spool, 1)
    (path,) = spool.pending()
    assert path.name == f"{r.seq:020d}-{r.report_id}.json"
    assert Report.model_validate_json(path.read_text()) == r
    assert not list(tmp_path.glob(".tmp-*"))


def test_flush_delivers_oldest_first_and_empties_the_spool(tmp_path: Path) -> None:
    spool, ctl = Spool(tmp_path), FakeController()
    reports = _fill(spool, 5)
    result = spool.flush(ctl)
    assert (result.delivered, result.remaining, result.error) == (5, 0, None)
    assert [r.report_id for r in ctl.received] == [r.report_id for r in reports]
    assert spool.pending() == []


def test_nothing_is_lost_while_the_controller_is_down(tmp_path: Path) -> None:
    spool, ctl = Spool(tmp_path), FakeController()
    ctl.up = False
    reports = _fill(spool, 3)
    for _ in range(3):
        result = spool.flush(ctl)
        assert result.delivered == 0 and result.remaining == 3 and result.error
    assert len(spool) == 3
    reports += _fill(spool, 2)
    ctl.up = True
    assert spool.flush(ctl).delivered == 5
    assert [r.seq for r in ctl.received] == [r.seq for r in reports]


def test_exactly_once_when_an_ack_is_lost_and_the_report_redelivered(tmp_path: Path) -> None:
    spool, ctl = Spool(tmp_path), FakeController()
    reports = _fill(spool, 3)
    ctl.lose_acks = 1  # the controller stores report 1 but its answer never arrives
    first = spool.flush(ctl)
    assert first.delivered == 0 and first.remaining == 3
    second = spool.flush(ctl)  # redelivers report 1: acknowledged as a duplicate
    assert second.delivered == 3 and spool.pending() == []
    assert [r.report_id for r in ctl.received] == [reports[0].report_id] * 2 + [
        r.report_id for r in reports[1:]
    ]
    assert len(ctl.stored) == 3  # each report stored exactly once


def test_a_refused_report_goes_aside_with_its_reason_and_does_not_block(tmp_path: Path) -> None:
    spool, ctl = Spool(tmp_path), FakeController()
    reports = _fill(spool, 3)
    ctl.refuse = lambda r: r.report_id == reports[1].report_id
    result = spool.flush(ctl)
    assert (result.delivered, result.rejected, result.remaining) == (2, 1, 0)
    aside = tmp_path / "rejected" / f"{reports[1].seq:020d}-{reports[1].report_id}.json"
    assert Report.model_validate_json(aside.read_text()) == reports[1]
    reason = aside.with_name(aside.name + ".reason").read_text()
    assert "422" in reason and "bad value" in reason
    assert spool.pending() == []


def test_a_corrupt_file_goes_aside_too(tmp_path: Path) -> None:
    spool, ctl = Spool(tmp_path), FakeController()
    good = _fill(spool, 2)
    bad = tmp_path / f"{spool.next_seq():020d}-broken.json"
    bad.write_text("{half a rep")
    result = spool.flush(ctl)
    assert (result.delivered, result.rejected) == (2, 1)
    assert (tmp_path / "rejected" / bad.name).exists()
    assert "unreadable" in (tmp_path / "rejected" / (bad.name + ".reason")).read_text()
    assert [r.report_id for r in ctl.received] == [r.report_id for r in good]


def test_the_sequence_survives_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _fill(spool, 3)
    spool.flush(FakeController())
    assert Spool(tmp_path).next_seq() == 4  # from the state file, spool empty
    (tmp_path / "seq").unlink()
    spool2 = Spool(tmp_path)
    _fill(spool2, 2)  # seq 1, 2 again: nothing says otherwise...
    (tmp_path / "seq").write_text("garbage")
    assert Spool(tmp_path).next_seq() == 3  # ...but files on disk still count


def test_the_sequence_counts_rejected_files(tmp_path: Path) -> None:
    spool, ctl = Spool(tmp_path), FakeController()
    _fill(spool, 2)
    ctl.refuse = lambda r: True
    spool.flush(ctl)
    (tmp_path / "seq").unlink()
    assert Spool(tmp_path).next_seq() == 3


def test_bounded_size_drops_the_oldest(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path, max_files=3)
    reports = _fill(spool, 5)
    assert [p.name.split("-")[0] for p in spool.pending()] == [f"{r.seq:020d}" for r in reports[2:]]
    assert any("dropping the 1 oldest" in r.getMessage() for r in caplog.records)


def test_leftover_temporary_files_are_removed_on_start(tmp_path: Path) -> None:
    (tmp_path / ".tmp-abc.part").write_text("x")
    Spool(tmp_path)
    assert not (tmp_path / ".tmp-abc.part").exists()


def test_spool_files_are_plain_json(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _fill(spool, 1)
    data = json.loads(spool.pending()[0].read_text())
    assert data["node"] == "node1" and data["seq"] == 1


# --- no head-of-line blocking ---


class Clock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FailsOn:
    """A controller that fails (500) on the reports ``failing`` names, else as ``ctl``."""

    def __init__(self, ctl: FakeController, failing: set[str]) -> None:
        self.ctl = ctl
        self.failing = failing
        self.tries: list[str] = []  # report_id of every attempt, failed or not

    def post_report(self, report: Report) -> object:
        self.tries.append(report.report_id)
        if report.report_id in self.failing:
            raise ControllerFailed(500, "internal error (TypeError); see the controller log")
        return self.ctl.post_report(report)


def _ids(reports: list[Report]) -> list[str]:
    return [r.report_id for r in reports]


def test_a_report_the_controller_fails_on_does_not_hold_back_the_ones_behind_it(
    tmp_path: Path,
) -> None:
    spool, ctl = Spool(tmp_path, clock=Clock()), FakeController()
    reports = _fill(spool, 3)
    result = spool.flush(FailsOn(ctl, {reports[0].report_id}))
    assert (result.delivered, result.deferred, result.remaining, result.error) == (2, 1, 1, None)
    assert _ids(ctl.received) == _ids(reports[1:])
    (left,) = spool.pending()
    assert left.name == f"{reports[0].seq:020d}-{reports[0].report_id}.json"


def test_a_failed_report_waits_its_back_off_then_is_delivered(tmp_path: Path) -> None:
    clock = Clock()
    spool, ctl = Spool(tmp_path, clock=clock, backoff_s=10.0), FakeController()
    reports = _fill(spool, 2)
    sink = FailsOn(ctl, {reports[0].report_id})
    spool.flush(sink)
    sink.failing.clear()  # the controller would deliver it now, but its back-off runs
    clock.now += 9.0
    early = spool.flush(sink)
    assert (early.delivered, early.deferred, early.remaining) == (0, 1, 1)
    assert sink.tries == _ids(reports)  # the failed one not tried again yet
    clock.now += 1.0
    late = spool.flush(sink)
    assert (late.delivered, late.deferred, late.remaining) == (1, 0, 0)
    assert _ids(ctl.received) == [reports[1].report_id, reports[0].report_id]
    assert spool.pending() == []


def test_the_back_off_doubles_up_to_its_cap(tmp_path: Path) -> None:
    clock = Clock()
    spool = Spool(tmp_path, clock=clock, backoff_s=10.0, max_backoff_s=25.0, max_attempts=9)
    (report,) = _fill(spool, 1)
    sink = FailsOn(FakeController(), {report.report_id})
    tried_at = []
    for _ in range(100):
        before = len(sink.tries)
        spool.flush(sink)
        if len(sink.tries) > before:
            tried_at.append(clock.now)
        clock.now += 1.0
    gaps = [b - a for a, b in itertools.pairwise(tried_at)]
    assert gaps == [10.0, 20.0, 25.0, 25.0]


def test_a_report_that_keeps_failing_is_dead_lettered_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    spool, ctl = Spool(tmp_path, clock=clock, max_attempts=3), FakeController()
    reports = _fill(spool, 2)
    sink = FailsOn(ctl, {reports[0].report_id})
    results = []
    for _ in range(10):
        results.append(spool.flush(sink))
        clock.now += 3600.0
    assert sink.tries.count(reports[0].report_id) == 3
    assert sum(r.rejected for r in results) == 1 and spool.pending() == []
    aside = tmp_path / "rejected" / f"{reports[0].seq:020d}-{reports[0].report_id}.json"
    assert Report.model_validate_json(aside.read_text()) == reports[0]
    reason = aside.with_name(aside.name + ".reason").read_text()
    assert "3 attempts" in reason and "500" in reason and "TypeError" in reason
    gave_up = [r for r in caplog.records if "gave up" in r.getMessage()]
    assert len(gave_up) == 1 and gave_up[0].levelname == "WARNING"
    assert _ids(ctl.received) == [reports[1].report_id]


def test_an_unavailable_controller_still_pauses_delivery_in_order(tmp_path: Path) -> None:
    clock = Clock()
    spool, ctl = Spool(tmp_path, clock=clock), FakeController()
    reports = _fill(spool, 3)
    sink = FailsOn(ctl, set())
    ctl.up = False
    result = spool.flush(sink)
    assert (result.delivered, result.deferred, result.remaining) == (0, 0, 3) and result.error
    assert sink.tries == [reports[0].report_id]  # nothing behind the head was tried
    ctl.up = True
    assert spool.flush(sink).delivered == 3  # no back-off: an outage is not the report's
    assert _ids(ctl.received) == _ids(reports)


def test_a_wrong_token_pauses_delivery_and_keeps_every_report(tmp_path: Path) -> None:
    spool = Spool(tmp_path, clock=Clock())
    reports = _fill(spool, 3)

    class WrongToken:
        def post_report(self, report: Report) -> object:
            raise RejectedByController(401, "missing or wrong bearer token")

    result = spool.flush(WrongToken())
    assert (result.delivered, result.rejected, result.remaining) == (0, 0, 3)
    assert result.error and "401" in result.error
    assert not (tmp_path / "rejected").exists()
    ctl = FakeController()
    assert spool.flush(ctl).delivered == 3
    assert _ids(ctl.received) == _ids(reports)


def test_rejected_keeps_only_the_newest_reports_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool, ctl = Spool(tmp_path, max_rejected=3), FakeController()
    ctl.refuse = lambda r: True
    reports = _fill(spool, 5)
    spool.flush(ctl)
    reports += _fill(spool, 2)
    spool.flush(ctl)
    aside = sorted(p.name for p in (tmp_path / "rejected").iterdir())
    newest = [f"{r.seq:020d}-{r.report_id}.json" for r in reports[-3:]]
    assert aside == sorted(newest + [n + ".reason" for n in newest])
    full = [r for r in caplog.records if "dropping the oldest" in r.getMessage()]
    assert len(full) == 1 and full[0].levelname == "WARNING"
    assert spool.totals.dropped == 4
    (tmp_path / "seq").unlink()
    assert Spool(tmp_path).next_seq() == reports[-1].seq + 1  # the newest still counts


def test_totals_count_every_flush(tmp_path: Path) -> None:
    clock = Clock()
    spool, ctl = Spool(tmp_path, clock=clock), FakeController()
    reports = _fill(spool, 4)
    ctl.refuse = lambda r: r.report_id == reports[1].report_id
    spool.flush(FailsOn(ctl, {reports[0].report_id}))
    clock.now += 3600.0
    spool.flush(ctl)
    t = spool.totals
    assert (t.delivered, t.rejected, t.deferred, t.dropped) == (3, 1, 1, 0)
