"""The scanner's own rules: bad roots, unreadable entries, what is not a candidate."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest

from hpresil.ckpt import CheckpointRootError, latest, scan
from hpresil.errors import HpresilError


def test_a_missing_root_is_a_one_line_error_with_exit_code_2(tmp_path: Path) -> None:
    with pytest.raises(CheckpointRootError) as err:
        latest(tmp_path / "nope")
    assert str(err.value) == f"{tmp_path / 'nope'}: no such directory"
    assert isinstance(err.value, HpresilError) and err.value.exit_code == 2


def test_a_file_as_root_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(CheckpointRootError, match="not a directory"):
        scan(tmp_path / "f")


def test_an_empty_root_has_nothing(tmp_path: Path) -> None:
    assert scan(tmp_path) == [] and latest(tmp_path) is None


def test_broken_entries_are_reasons_not_exceptions(tmp_path: Path, layouts: ModuleType) -> None:
    good = layouts.write("hf", tmp_path, 100)
    os.symlink(tmp_path / "gone", tmp_path / "checkpoint-300")
    (tmp_path / "checkpoint-200").write_text("a file where a directory belongs")
    rows = {ck.path.name: ck.reason for ck in scan(tmp_path)}
    assert rows["checkpoint-300"] == "checkpoint-300 is a broken symlink"
    assert rows["checkpoint-200"] == "cannot read checkpoint-200: Not a directory"
    assert (found := latest(tmp_path)) is not None and found.path == good


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads through permissions")
def test_an_unreadable_checkpoint_is_a_reason(tmp_path: Path, layouts: ModuleType) -> None:
    good = layouts.write("hf", tmp_path, 100)
    locked = layouts.write("hf", tmp_path, 200)
    locked.chmod(0)
    try:
        rows = {ck.path.name: ck.reason for ck in scan(tmp_path)}
        assert rows["checkpoint-200"] == "cannot read checkpoint-200: Permission denied"
        assert (found := latest(tmp_path)) is not None and found.path == good
    finally:
        locked.chmod(0o755)


def test_hidden_entries_and_the_hpresil_dir_are_not_candidates(
    tmp_path: Path, layouts: ModuleType
) -> None:
    layouts.write("hpresil", tmp_path / ".hpresil", 900)
    layouts.write("hf", tmp_path / ".trash", 800)
    (tmp_path / ".checkpoint-700").mkdir()
    path = layouts.write("hpresil", tmp_path, 100)
    assert [ck.path for ck in scan(tmp_path)] == [path]


def test_candidates_are_ordered_by_step_not_by_name(tmp_path: Path, layouts: ModuleType) -> None:
    for step in (9, 10, 100, 11):
        layouts.write("hf", tmp_path, step)
    assert [ck.step for ck in scan(tmp_path)] == [100, 11, 10, 9]


def test_latest_walks_down_past_several_broken_saves(tmp_path: Path, layouts: ModuleType) -> None:
    good = layouts.write("dcp", tmp_path, 100)
    for step, k in ((200, 3), (300, 1), (400, 2)):
        layouts.write("dcp", tmp_path, step, stop_after=k)
    assert (found := latest(tmp_path)) is not None and found.path == good
    assert [ck.complete for ck in scan(tmp_path)] == [False, False, False, True]


def test_a_root_named_like_a_checkpoint_is_that_checkpoint(
    tmp_path: Path, layouts: ModuleType
) -> None:
    path = layouts.write("hpresil", tmp_path, 5, stop_after=2)  # not committed
    assert [(ck.path, ck.step, ck.complete) for ck in scan(path)] == [(path, 5, False)]
