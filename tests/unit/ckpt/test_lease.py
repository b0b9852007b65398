"""The generation lease: take, check, and who fences whom."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpresil.ckpt.lease import Fenced, Lease, current, fenced, lease_path
from hpresil.errors import HpresilError


def test_take_writes_the_documented_file(tmp_path: Path) -> None:
    lease = Lease.take(tmp_path, 812, 2, "gpu17", now=1700000000.5)
    data = json.loads(lease_path(tmp_path).read_text())
    assert data == {
        "job_id": 812,
        "generation": 2,
        "token": lease.token,
        "node": "gpu17",
        "taken_at": 1700000000.5,
    }
    assert lease_path(tmp_path) == tmp_path / ".hpresil" / "lease.json"
    assert [p.name for p in lease_path(tmp_path).parent.iterdir()] == ["lease.json"]  # no tmp left
    lease.check()


def test_old_generation_is_fenced_once_a_newer_one_takes_over(tmp_path: Path) -> None:
    old = Lease.take(tmp_path, 812, 0, "gpu17")
    new = Lease.take(tmp_path, 812, 1, "gpu03")
    new.check()
    with pytest.raises(Fenced) as caught:
        old.check()
    message = str(caught.value)
    assert "job 812 generation 1 on gpu03" in message and "generation 0" in message
    assert "\n" not in message
    assert isinstance(caught.value, HpresilError)


def test_a_stale_generation_cannot_take_it_back(tmp_path: Path) -> None:
    new = Lease.take(tmp_path, 812, 3, "gpu03")
    with pytest.raises(Fenced, match="held by job 812 generation 3"):
        Lease.take(tmp_path, 812, 2, "gpu17")
    new.check()  # still the holder: the refused take wrote nothing


def test_a_resubmitted_job_takes_over_even_from_a_higher_generation(tmp_path: Path) -> None:
    old = Lease.take(tmp_path, 812, 5, "gpu17")
    new = Lease.take(tmp_path, 900, 0, "gpu03")
    new.check()
    with pytest.raises(Fenced, match="job 900 generation 0"):
        old.check()


def test_taking_again_in_the_same_incarnation_returns_the_same_lease(tmp_path: Path) -> None:
    first = Lease.take(tmp_path, 812, 1, "gpu17")  # e.g. the TaskProlog
    again = Lease.take(tmp_path, 812, 1, "gpu17")  # the training script's start()
    assert again == first
    first.check()


def test_a_missing_or_garbled_lease_fences_its_holder(tmp_path: Path) -> None:
    lease = Lease.take(tmp_path, 812, 0, "gpu17")
    lease_path(tmp_path).write_text("{not json")
    with pytest.raises(Fenced, match="missing or unreadable"):
        lease.check()
    lease_path(tmp_path).unlink()
    with pytest.raises(Fenced, match="missing or unreadable"):
        lease.check()


def test_a_garbled_lease_is_replaced_by_the_next_take(tmp_path: Path) -> None:
    lease_path(tmp_path).parent.mkdir()
    lease_path(tmp_path).write_text('{"job_id": "812"}')
    assert Lease.read(tmp_path) is None
    Lease.take(tmp_path, 812, 0, "gpu17").check()


def test_read_of_a_directory_without_a_lease(tmp_path: Path) -> None:
    assert Lease.read(tmp_path) is None
    assert Lease.read(tmp_path / "not-created") is None


# --- the scanner's reading: only job, generation and taken_at are needed -------------


def write(root: Path, record: object) -> None:
    lease_path(root).parent.mkdir(exist_ok=True)
    lease_path(root).write_text(json.dumps(record))


def test_the_scanner_counts_a_lease_without_token_or_node_that_a_holder_refuses(
    tmp_path: Path,
) -> None:
    write(tmp_path, {"job_id": 42, "generation": 3, "taken_at": 1700000000})
    assert Lease.read(tmp_path) is None
    assert current(tmp_path) == Lease(tmp_path, 42, 3, "", "", 1700000000.0)
    writer = {"job_id": 42, "generation": 2, "token": "g2"}
    assert fenced(current(tmp_path), writer, 1700000001.0) == (
        "written by fenced generation 2 after generation 3 took over"
    )
    assert fenced(current(tmp_path), writer, 1699999999.0) is None


def test_both_readers_agree_on_a_complete_lease(tmp_path: Path) -> None:
    taken = Lease.take(tmp_path, 812, 2, "gpu17", now=1700000000.5)
    assert current(tmp_path) == taken == Lease.read(tmp_path)


@pytest.mark.parametrize(
    "record",
    [
        ["not", "an", "object"],
        {"job_id": True, "generation": 0, "token": "t", "node": "n", "taken_at": 1.0},
        {"job_id": 1, "generation": 2.0, "token": "t", "node": "n", "taken_at": 1.0},
        {"job_id": 1, "generation": 2, "token": "t", "node": "n"},
        {"job_id": 1, "generation": 2, "token": "t", "node": "n", "taken_at": 10**400},
    ],
)
def test_neither_reader_raises_on_a_bad_lease(tmp_path: Path, record: object) -> None:
    write(tmp_path, record)
    assert Lease.read(tmp_path) is None
    assert current(tmp_path) is None


def test_only_the_first_64_kib_of_a_lease_are_read(tmp_path: Path) -> None:
    record = {"job_id": 1, "generation": 2, "token": "t", "node": "n" * (1 << 16), "taken_at": 1.0}
    write(tmp_path, record)
    assert Lease.read(tmp_path) is None
    assert current(tmp_path) is None
