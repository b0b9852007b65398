"""The spool: ordered, durable, exactly-once delivery with refusals set aside."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hpresil.agent.spool import Spool
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
