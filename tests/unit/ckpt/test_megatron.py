"""Megatron-LM ``iter_<N>/`` (legacy and torch_dist) and the tracker written last."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import ModuleType

import pytest

from hpresil.ckpt import Format, latest, scan
from tests.unit.ckpt.conftest import cut

TRACKER = "latest_checkpointed_iteration.txt"


def rows(root: Path) -> dict[str, tuple[bool, str | None]]:
    return {ck.path.name: (ck.complete, ck.reason) for ck in scan(root)}


@pytest.mark.parametrize("fmt", ["megatron", "megatron-legacy"])
def test_the_iteration_the_tracker_names_is_chosen(
    fmt: str, tmp_path: Path, layouts: ModuleType
) -> None:
    layouts.write(fmt, tmp_path, 100)
    path = layouts.write(fmt, tmp_path, 200)
    found = latest(tmp_path)
    assert found is not None and (found.path, found.step, found.format) == (
        path,
        200,
        Format.MEGATRON,
    )
    assert path.name == "iter_0000200"
    assert found.committed_at == (tmp_path / TRACKER).stat().st_mtime


@pytest.mark.parametrize("fmt", ["megatron", "megatron-legacy"])
def test_a_newer_iteration_than_the_tracker_was_never_committed(
    fmt: str, tmp_path: Path, layouts: ModuleType
) -> None:
    older = layouts.write(fmt, tmp_path, 100)
    layouts.write(fmt, tmp_path, 200)
    (tmp_path / TRACKER).write_text("100")  # rank 0 died after the barrier, before the tracker
    assert rows(tmp_path)["iter_0000200"] == (False, "not committed (tracker names iteration 100)")
    assert (found := latest(tmp_path)) is not None and found.path == older


def test_a_tracker_naming_a_missing_iteration_falls_back(
    tmp_path: Path, layouts: ModuleType
) -> None:
    older = layouts.write("megatron", tmp_path, 100)
    shutil.rmtree(layouts.write("megatron", tmp_path, 200))
    assert rows(tmp_path)["iter_0000200"] == (
        False,
        "tracker names iter_0000200, which does not exist",
    )
    assert (found := latest(tmp_path)) is not None and found.path == older


def test_torch_dist_needs_metadata_json_written_after_the_shards(
    tmp_path: Path, layouts: ModuleType
) -> None:
    layouts.write("megatron", tmp_path, 100)
    path = layouts.write("megatron", tmp_path, 200)
    (path / "metadata.json").unlink()
    assert rows(tmp_path)["iter_0000200"][1] == (
        "no metadata.json (rank 0 writes it after every shard and .metadata)"
    )
    assert (found := latest(tmp_path)) is not None and found.step == 100


def test_torch_dist_with_a_shard_cut_short_is_refused(tmp_path: Path, layouts: ModuleType) -> None:
    layouts.write("megatron", tmp_path, 100)
    path = layouts.write("megatron", tmp_path, 200)
    cut(path / "__1_0.distcp")
    assert "__1_0.distcp is" in (rows(tmp_path)["iter_0000200"][1] or "")
    assert "needs" in (rows(tmp_path)["iter_0000200"][1] or "")
    assert (found := latest(tmp_path)) is not None and found.step == 100


def test_without_a_tracker_torch_dist_carries_its_own_commit_point(
    tmp_path: Path, layouts: ModuleType
) -> None:
    layouts.write("megatron", tmp_path, 100, stop_after=6)  # all but the tracker
    path = layouts.write("megatron", tmp_path, 200, stop_after=5)  # no metadata.json
    got = rows(tmp_path)
    assert got["iter_0000200"][0] is False and got["iter_0000100"][0] is True
    assert (found := latest(tmp_path)) is not None and found.step == 100 and found.path != path


def test_without_a_tracker_a_legacy_dir_is_not_committed(
    tmp_path: Path, layouts: ModuleType
) -> None:
    layouts.write("megatron-legacy", tmp_path, 100, stop_after=2)  # every rank, no tracker
    assert latest(tmp_path) is None
    reason = rows(tmp_path)["iter_0000100"][1] or ""
    assert reason.startswith("not committed: no latest_checkpointed_iteration.txt")


def test_legacy_missing_a_tensor_parallel_rank_is_refused(
    tmp_path: Path, layouts: ModuleType
) -> None:
    layouts.write("megatron-legacy", tmp_path, 100, world_size=4)
    path = layouts.write("megatron-legacy", tmp_path, 200, world_size=4)
    shutil.rmtree(path / "mp_rank_03")  # the args record tensor_model_parallel_size=4
    assert rows(tmp_path)["iter_0000200"] == (False, "1 of 4 rank directories missing (TP 4)")
    assert (found := latest(tmp_path)) is not None and found.step == 100


def test_legacy_with_a_truncated_rank_file_is_refused(tmp_path: Path, layouts: ModuleType) -> None:
    layouts.write("megatron-legacy", tmp_path, 100)
    path = layouts.write("megatron-legacy", tmp_path, 200)
    cut(path / "mp_rank_01" / "model_optim_rng.pt")
    reason = rows(tmp_path)["iter_0000200"][1] or ""
    assert reason.startswith("mp_rank_01/: model_optim_rng.pt is not a complete zip archive")
    assert (found := latest(tmp_path)) is not None and found.step == 100


def test_an_iteration_given_directly_is_judged_by_its_files(
    tmp_path: Path, layouts: ModuleType
) -> None:
    path = layouts.write("megatron", tmp_path, 100, stop_after=6)
    assert [(ck.path, ck.step, ck.complete) for ck in scan(path)] == [(path, 100, True)]


def test_an_unreadable_tracker_is_a_reason_not_an_exception(
    tmp_path: Path, layouts: ModuleType
) -> None:
    path = layouts.write("megatron", tmp_path, 100, stop_after=6)
    (tmp_path / TRACKER).mkdir()  # open() fails on it as it would without permission
    found = latest(tmp_path)
    assert found is not None and found.path == path  # torch_dist: metadata.json commits it
