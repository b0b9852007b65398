"""Mount points: in the mount table, answering stat, and a hung one never blocks."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from hpresil.checks.mounts import MountsCheck
from hpresil.config.host import MountsConfig
from hpresil.host.mounts import MountFacts, MountSource, MountState, parse_mount_table
from hpresil.vocab import Action, Category, Status
from tests.unit.host.builders import snapshot

TABLE = """\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
/dev/nvme0n1p2 / ext4 rw,relatime 0 0
nfs1:/export/home /home nfs4 rw,relatime,vers=4.2,hard,proto=tcp 0 0
lustre@o2ib:/scratch /scratch lustre rw,flock 0 0
/dev/sdb1 /mnt/with\\040space xfs rw 0 0
"""


def responsive(mount: MountState) -> bool:
    """Its stat returned, and without an error."""
    return mount.hung_s is None and mount.error is None


class Stat:
    """A stat that answers, fails or hangs per path, and counts its calls."""

    def __init__(self, hang: tuple[str, ...] = (), fail: dict[str, int] | None = None) -> None:
        self.hang, self.fail = hang, fail or {}
        self.release = threading.Event()
        self.calls: list[str] = []

    def __call__(self, path: str) -> object:
        self.calls.append(path)
        if path in self.hang:
            self.release.wait(10)
        if path in self.fail:
            raise OSError(self.fail[path], os.strerror(self.fail[path]), path)
        return object()


def mount_source(tmp_path: Path, stat: Stat, *required: str, timeout: float = 1.0) -> MountSource:
    table = tmp_path / "mounts"
    table.write_text(TABLE)
    cfg = MountsConfig(required=required, stat_timeout_s=timeout)
    return MountSource(cfg, table=table, stat=stat)


def test_the_mount_table_is_parsed_with_escapes() -> None:
    table = parse_mount_table(TABLE)
    assert table["/home"].fstype == "nfs4" and table["/home"].device == "nfs1:/export/home"
    assert table["/mnt/with space"].fstype == "xfs"


def test_mounted_and_answering_is_ok(tmp_path: Path) -> None:
    facts = mount_source(tmp_path, Stat(), "/home", "/scratch").collect()
    results = MountsCheck().evaluate(snapshot(facts))
    assert [r.status for r in results] == [Status.OK, Status.OK]
    assert results[1].summary == "/scratch: mounted (lustre) and responding"


def test_not_mounted_fails_with_a_drain(tmp_path: Path) -> None:
    facts = mount_source(tmp_path, Stat(), "/projects").collect()
    (result,) = MountsCheck().evaluate(snapshot(facts))
    assert (result.status, result.action, result.category) == (
        Status.FAIL,
        Action.DRAIN,
        Category.HOST,
    )
    assert result.summary == "/projects: not mounted"


def test_a_stale_handle_fails(tmp_path: Path) -> None:
    facts = mount_source(tmp_path, Stat(fail={"/home": errno.ESTALE}), "/home").collect()
    (result,) = MountsCheck().evaluate(snapshot(facts))
    assert result.status is Status.FAIL
    assert result.summary == "/home: stat failed: Stale file handle"


def test_a_hung_mount_does_not_block_and_is_not_statted_twice(tmp_path: Path) -> None:
    stat = Stat(hang=("/scratch",))
    src = mount_source(tmp_path, stat, "/home", "/scratch", timeout=0.5)
    check = MountsCheck(MountsConfig(required=("/home", "/scratch"), stat_timeout_s=0.5))
    try:
        started = time.monotonic()
        first = src.collect()
        assert time.monotonic() - started < 2.0  # waited its deadline, not the hang
        home, scratch = check.evaluate(snapshot(first))
        assert home.status is Status.OK
        assert scratch.status is Status.FAIL
        assert scratch.summary == "/scratch: not responding (stat hung over 0.5 s)"
        started = time.monotonic()
        second = src.collect()
        assert time.monotonic() - started < 0.25  # a stat known to hang is not waited for
        assert stat.calls.count("/scratch") == 1 and stat.calls.count("/home") == 2
        (hung,) = [m for m in second.mounts if m.path == "/scratch"]
        assert hung.hung_s is not None and hung.hung_s >= 0.5
    finally:
        stat.release.set()
    for _ in range(200):  # the hung stat returns; then each tick stats afresh again
        if all(responsive(m) for m in src.collect().mounts):
            break
        time.sleep(0.01)
    before = stat.calls.count("/scratch")
    assert all(responsive(m) for m in src.collect().mounts)
    assert stat.calls.count("/scratch") == before + 1


def test_the_real_root_file_system() -> None:
    facts = MountSource(MountsConfig(required=("/",))).collect()
    (root,) = facts.mounts
    assert root.mounted and responsive(root) and root.stat_s is not None


def test_nothing_required_means_the_check_does_not_run(tmp_path: Path) -> None:
    facts = mount_source(tmp_path, Stat()).collect()
    assert facts == MountFacts() and not MountsCheck().supported(snapshot(facts))


def test_a_failed_collection_is_unknown() -> None:
    snap = snapshot(errors={MountFacts: "mounts: still running (12 s)"})
    assert MountsCheck().supported(snap)
    (result,) = MountsCheck().evaluate(snap)
    assert result.status is Status.UNKNOWN


def test_mount_points_must_be_absolute() -> None:
    with pytest.raises(ValidationError, match="absolute"):
        MountsConfig(required=("scratch",))
    assert MountsConfig(required=("/scratch/",)).required == ("/scratch",)
