"""Disk, inode and memory headroom against percent and absolute thresholds."""

from __future__ import annotations

import errno
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from hpresil.checks.headroom import HeadroomCheck
from hpresil.config.host import HeadroomConfig
from hpresil.host.headroom import GIB, HeadroomFacts, HeadroomSource, Memory, nearest_existing
from hpresil.vocab import Action, Category, CheckResult, Status
from tests.unit.host.builders import snapshot

BLOCK = 4096


def fs(total_gib: float, free_gib: float, inodes: int = 1000, free_inodes: int = 900) -> object:
    return SimpleNamespace(
        f_frsize=BLOCK,
        f_blocks=int(total_gib * GIB / BLOCK),
        f_bavail=int(free_gib * GIB / BLOCK),
        f_files=inodes,
        f_favail=free_inodes,
    )


def run(disk: object, memory: Memory | None = None, **config: object) -> list[CheckResult]:
    cfg = HeadroomConfig.model_validate({"paths": ("/",), **config})

    def mem() -> Memory:
        if memory is None:
            raise OSError(errno.EACCES, "Permission denied")
        return memory

    facts = HeadroomSource(cfg, statvfs=lambda _: disk, memory=mem).collect()
    return HeadroomCheck(cfg).evaluate(snapshot(facts))


PLENTY = Memory(total_bytes=2048 * GIB, available_bytes=1800 * GIB)


def test_enough_space_and_memory_is_ok() -> None:
    disk, memory = run(fs(1000, 500), PLENTY)
    assert (disk.status, disk.summary) == (Status.OK, "/: enough free space")
    assert disk.evidence["free_bytes"] == 500 * GIB
    assert (memory.status, memory.summary) == (Status.OK, "memory: enough available")


@pytest.mark.parametrize(
    ("free_gib", "status", "summary"),
    [
        (80, Status.WARN, "/: free space below 10%"),
        (40, Status.FAIL, "/: free space below 5%"),
        (50, Status.WARN, "/: free space below 10%"),
    ],
)
def test_disk_levels_by_percent(free_gib: float, status: Status, summary: str) -> None:
    disk, _ = run(fs(1000, free_gib), PLENTY)
    assert (disk.status, disk.summary) == (status, summary)
    assert disk.category is Category.HOST
    assert disk.action is (Action.DRAIN if status is Status.FAIL else Action.WATCH)


def test_disk_fails_below_the_absolute_floor_on_a_small_disk() -> None:
    disk, _ = run(fs(8, 0.5), PLENTY, disk_fail_free_percent=1, disk_warn_free_percent=2)
    assert (disk.status, disk.summary) == (Status.FAIL, "/: free space below 1 GiB")


def test_inode_exhaustion_fails_and_uncounted_inodes_are_ignored() -> None:
    disk, _ = run(fs(1000, 500, inodes=1000, free_inodes=10), PLENTY)
    assert (disk.status, disk.summary) == (Status.FAIL, "/: free inodes below 5%")
    disk, _ = run(fs(1000, 500, inodes=0, free_inodes=0), PLENTY)
    assert disk.status is Status.OK


def test_memory_only_warns_by_default_and_fails_when_configured() -> None:
    low = Memory(total_bytes=100 * GIB, available_bytes=2 * GIB)
    _, memory = run(fs(1000, 500), low)
    assert (memory.status, memory.summary) == (Status.WARN, "memory: available below 5%")
    _, memory = run(fs(1000, 500), low, memory_fail_available_gib=4)
    assert (memory.status, memory.action) == (Status.FAIL, Action.DRAIN)
    assert memory.summary == "memory: available below 4 GiB"


def test_unreadable_memory_is_unknown_and_disks_are_still_judged() -> None:
    disk, memory = run(fs(1000, 500), None)
    assert disk.status is Status.OK
    assert memory.status is Status.UNKNOWN and "Permission denied" in memory.summary


def test_an_unmeasurable_path_is_unknown() -> None:
    def broken(path: str) -> object:
        raise OSError(errno.EIO, "Input/output error")

    cfg = HeadroomConfig(paths=("/",))
    facts = HeadroomSource(cfg, statvfs=broken, memory=lambda: PLENTY).collect()
    disk, _ = HeadroomCheck(cfg).evaluate(snapshot(facts))
    assert disk.status is Status.UNKNOWN and "Input/output error" in disk.summary


def test_a_missing_path_is_measured_where_it_would_be_created(tmp_path: Path) -> None:
    absent = tmp_path / "var" / "lib" / "hpresil"
    assert nearest_existing(str(absent)) == str(tmp_path)
    facts = HeadroomSource(HeadroomConfig(paths=(str(absent),))).collect()
    (disk,) = facts.disks
    assert disk.measured_at == str(tmp_path) and disk.total_bytes > 0


def test_the_default_source_measures_this_machine() -> None:
    facts = HeadroomSource().collect()
    assert [d.path for d in facts.disks] == ["/", "/tmp", "/var/lib/hpresil"]
    assert facts.memory is not None and facts.memory.total_bytes > 0


def test_a_failed_collection_is_unknown() -> None:
    (result,) = HeadroomCheck().evaluate(snapshot(errors={HeadroomFacts: "timed out"}))
    assert result.status is Status.UNKNOWN


def test_fail_thresholds_may_not_exceed_warnings() -> None:
    with pytest.raises(ValidationError, match="disk_fail_free_percent"):
        HeadroomConfig(disk_fail_free_percent=20, disk_warn_free_percent=10)
    HeadroomConfig(disk_warn_free_percent=None, disk_fail_free_percent=20)
