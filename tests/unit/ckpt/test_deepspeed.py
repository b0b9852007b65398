"""DeepSpeed ``global_step<N>/`` tags and the ``latest`` pointer rank 0 writes last."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from hpresil.ckpt import Format, latest, scan
from tests.unit.ckpt.conftest import cut


def rows(root: Path) -> dict[str, tuple[bool, str | None]]:
    return {ck.path.name: (ck.complete, ck.reason) for ck in scan(root)}


def test_the_tag_latest_names_is_chosen(tmp_path: Path, layouts: ModuleType) -> None:
    layouts.write("deepspeed", tmp_path, 100)
    tag = layouts.write("deepspeed", tmp_path, 200)
    found = latest(tmp_path)
    assert found is not None and (found.path, found.step, found.format) == (
        tag,
        200,
        Format.DEEPSPEED,
    )
    assert found.committed_at == (tmp_path / "latest").stat().st_mtime


def test_a_newer_tag_than_latest_was_never_committed(tmp_path: Path, layouts: ModuleType) -> None:
    older = layouts.write("deepspeed", tmp_path, 100)
    layouts.write("deepspeed", tmp_path, 200)
    (tmp_path / "latest").write_text("global_step100")  # as if rank 0 died before rewriting it
    assert rows(tmp_path)["global_step200"] == (
        False,
        "not committed (latest names global_step100)",
    )
    assert (found := latest(tmp_path)) is not None and found.path == older


def test_latest_naming_a_missing_tag_falls_back_to_the_newest_older_one(
    tmp_path: Path, layouts: ModuleType
) -> None:
    older = layouts.write("deepspeed", tmp_path, 100)
    layouts.write("deepspeed", tmp_path, 300, stop_after=2)  # partial, newer than the pointer
    (tmp_path / "latest").write_text("global_step200")
    got = rows(tmp_path)
    assert got["global_step200"] == (False, "latest names global_step200, which does not exist")
    assert got["global_step300"] == (False, "not committed (latest names global_step200)")
    assert (found := latest(tmp_path)) is not None and found.path == older


def test_a_committed_tag_missing_a_rank_shard_is_refused(
    tmp_path: Path, layouts: ModuleType
) -> None:
    older = layouts.write("deepspeed", tmp_path, 100, world_size=4)
    tag = layouts.write("deepspeed", tmp_path, 200, world_size=4)
    (tag / "zero_pp_rank_3_mp_rank_00_optim_states.pt").unlink()  # rank 3 still writing
    complete, reason = rows(tmp_path)["global_step200"]
    assert not complete
    assert (
        reason == "3 of 4 ZeRO optimizer shards for MP rank 0 (dp_world_size in the model states)"
    )
    assert (found := latest(tmp_path)) is not None and found.path == older


def test_zero_byte_and_truncated_shards_are_refused(tmp_path: Path, layouts: ModuleType) -> None:
    layouts.write("deepspeed", tmp_path, 100)
    tag = layouts.write("deepspeed", tmp_path, 200)
    shard = tag / "zero_pp_rank_1_mp_rank_00_optim_states.pt"
    shard.write_bytes(b"")
    assert "is a zero-byte file" in (rows(tmp_path)["global_step200"][1] or "")
    shard.write_bytes(layouts.torch_save({"x": 1}))
    cut(shard)
    assert "not a complete zip archive" in (rows(tmp_path)["global_step200"][1] or "")
    assert (found := latest(tmp_path)) is not None and found.step == 100


def test_without_latest_nothing_was_committed(tmp_path: Path, layouts: ModuleType) -> None:
    layouts.write("deepspeed", tmp_path, 100, stop_after=4)  # every file but latest
    assert latest(tmp_path) is None
    assert rows(tmp_path)["global_step100"][1] == (
        "not committed: no latest file (rank 0 writes it after every rank's files)"
    )


def test_an_empty_latest_leaves_the_files_to_decide(tmp_path: Path, layouts: ModuleType) -> None:
    layouts.write("deepspeed", tmp_path, 100)
    layouts.write("deepspeed", tmp_path, 200, stop_after=2)  # rank 1's shard never written
    (tmp_path / "latest").write_text("")  # truncated by a rewrite that never finished
    assert rows(tmp_path)["global_step200"][0] is False
    assert (found := latest(tmp_path)) is not None and found.step == 100


def test_the_old_shard_name_without_underscore_is_accepted(
    tmp_path: Path, layouts: ModuleType
) -> None:
    tag = layouts.write("deepspeed", tmp_path, 100)
    for rank in (0, 1):
        old = tag / f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt"
        old.rename(tag / f"zero_pp_rank_{rank}_mp_rank_00optim_states.pt")
    assert (found := latest(tmp_path)) is not None and found.path == tag


def test_a_tag_given_directly_is_judged_by_its_files(tmp_path: Path, layouts: ModuleType) -> None:
    tag = layouts.write("deepspeed", tmp_path, 100, stop_after=4)
    assert [(ck.path, ck.complete) for ck in scan(tag)] == [(tag, True)]


def test_tags_named_step_n_are_deepspeed_tags(tmp_path: Path, layouts: ModuleType) -> None:
    for step in (100, 200, 300):  # save_checkpoint(dir, tag=f"step-{step}")
        layouts.write("deepspeed", tmp_path, step).rename(tmp_path / f"step-{step}")
    (tmp_path / "latest").write_text("step-200")
    got = rows(tmp_path)
    assert got["step-300"] == (False, "not committed (latest names step-200)")
    found = latest(tmp_path)
    assert found is not None and (found.path.name, found.format) == ("step-200", Format.DEEPSPEED)


def test_a_tag_of_another_name_gets_its_step_from_the_model_states(
    tmp_path: Path, layouts: ModuleType
) -> None:
    layouts.write("deepspeed", tmp_path, 100)
    layouts.write("deepspeed", tmp_path, 200).rename(tmp_path / "best")
    (tmp_path / "latest").write_text("best")
    found = latest(tmp_path)
    assert found is not None and (found.path.name, found.step) == ("best", 200)


def test_a_latest_file_naming_an_hpresil_save_does_not_make_it_deepspeed(
    tmp_path: Path, layouts: ModuleType
) -> None:
    path = layouts.write("hpresil", tmp_path, 100)
    (tmp_path / "latest").write_text("step-100")  # a training script's own pointer
    found = latest(tmp_path)
    assert found is not None and (found.path, found.format) == (path, Format.MANIFEST)
    assert [ck.path for ck in scan(tmp_path)] == [path]
