"""The spool on a full disk (issue 9, "fill the disk"): a report the disk will not
take is held in memory and still delivered, in order; written to disk once there is
room; bounded; a refusal of a held report is dropped and counted, never retried."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hpresil.agent.spool import Spool
from hpresil.vocab import Report
from tests.diskfull import SmallDisk, small_disk
from tests.unit.agent.fakes import FakeController

AT = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path / "spool", size_kib=256) as d:
        yield d


def _put(spool: Spool, n: int) -> list[Report]:
    reports = []
    for _ in range(n):
        r = Report(report_id=uuid.uuid4().hex, node="node1", seq=spool.next_seq(), sent_at=AT)
        spool.put(r)
        reports.append(r)
    return reports


def test_a_report_the_full_disk_refuses_is_still_delivered(disk: SmallDisk) -> None:
    spool, ctl = Spool(disk.path), FakeController()
    first = _put(spool, 2)
    disk.fill()
    later = _put(spool, 2)  # no room for them
    assert len(spool.pending()) == 2 and len(spool) == 4 and spool.totals.held == 2
    result = spool.flush(ctl)
    assert (result.delivered, result.remaining) == (4, 0)
    assert [r.report_id for r in ctl.received] == [r.report_id for r in first + later]
    assert len(spool) == 0 and spool.totals.held == 0


def test_the_sequence_goes_on_while_the_disk_is_full(disk: SmallDisk) -> None:
    spool = Spool(disk.path)
    _put(spool, 1)
    disk.fill()
    assert [r.seq for r in _put(spool, 3)] == [2, 3, 4]


def test_held_reports_reach_the_disk_once_there_is_room(
    disk: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    spool, ctl = Spool(disk.path), FakeController()
    ctl.up = False  # and the controller is away too: nothing may be lost
    disk.fill()
    held = _put(spool, 3)
    assert spool.pending() == [] and spool.totals.held == 3
    warned = [r for r in caplog.records if "holding reports in memory" in r.getMessage()]
    assert len(warned) == 1  # once per episode, not once per report
    disk.free()
    after = _put(spool, 1)
    assert spool.totals.held == 0
    on_disk = [p.name.split("-")[0] for p in spool.pending()]
    assert on_disk == [f"{r.seq:020d}" for r in held + after]
    assert Spool(disk.path).next_seq() == after[0].seq + 1  # a restart now loses nothing
    ctl.up = True
    assert spool.flush(ctl).delivered == 4
    assert [r.report_id for r in ctl.received] == [r.report_id for r in held + after]


def test_memory_holds_only_the_newest(disk: SmallDisk) -> None:
    spool, ctl = Spool(disk.path, max_held=3), FakeController()
    disk.fill()
    reports = _put(spool, 5)
    assert spool.totals.held == 3 and spool.totals.dropped == 2
    spool.flush(ctl)
    assert [r.report_id for r in ctl.received] == [r.report_id for r in reports[2:]]


def test_a_held_report_the_controller_refuses_is_dropped_not_retried(disk: SmallDisk) -> None:
    spool, ctl = Spool(disk.path), FakeController()
    disk.fill()
    bad, good = _put(spool, 2)
    ctl.refuse = lambda r: r.report_id == bad.report_id
    result = spool.flush(ctl)
    assert (result.delivered, result.rejected, result.remaining) == (1, 1, 0)
    assert spool.totals.dropped == 1  # rejected/ has no room for it either
    ctl.refuse = lambda r: False
    assert spool.flush(ctl).delivered == 0  # not tried again
    assert [r.report_id for r in ctl.received] == [good.report_id]
