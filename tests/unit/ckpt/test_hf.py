"""Hugging Face Trainer ``checkpoint-<step>/``: trainer_state.json last, whole files."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from hpresil.ckpt import Format, latest, scan
from tests.unit.ckpt.conftest import cut


@pytest.fixture
def two(tmp_path: Path, layouts: ModuleType) -> tuple[Path, Path]:
    """A whole checkpoint-100 and checkpoint-200 (the one each test then breaks)."""
    return layouts.write("hf", tmp_path, 100), layouts.write("hf", tmp_path, 200)


def refused(root: Path, path: Path) -> str:
    """``path`` is refused, the older checkpoint-100 is chosen; returns the reason."""
    found = latest(root)
    assert found is not None and found.path.name == "checkpoint-100"
    (row,) = [ck for ck in scan(root) if ck.path == path]
    assert not row.complete and row.reason
    return row.reason


def test_the_step_comes_from_trainer_state(two: tuple[Path, Path], tmp_path: Path) -> None:
    found = latest(tmp_path)
    assert found is not None and (found.path, found.step, found.format) == (two[1], 200, Format.HF)
    assert found.committed_at == (two[1] / "trainer_state.json").stat().st_mtime


def test_missing_trainer_state_means_the_save_was_interrupted(
    two: tuple[Path, Path], tmp_path: Path
) -> None:
    (two[1] / "trainer_state.json").unlink()
    assert "no trainer_state.json" in refused(tmp_path, two[1])


def test_weights_cut_short_are_refused_even_with_trainer_state(
    two: tuple[Path, Path], tmp_path: Path
) -> None:
    cut(two[1] / "model.safetensors")
    assert "model.safetensors is" in refused(tmp_path, two[1])
    assert "cut short" in refused(tmp_path, two[1])


def test_a_zero_byte_optimizer_is_refused(two: tuple[Path, Path], tmp_path: Path) -> None:
    (two[1] / "optimizer.pt").write_bytes(b"")
    assert refused(tmp_path, two[1]) == "optimizer.pt is a zero-byte file"


def test_a_truncated_torch_file_is_refused(two: tuple[Path, Path], tmp_path: Path) -> None:
    cut(two[1] / "scheduler.pt")
    assert "scheduler.pt is not a complete zip archive" in refused(tmp_path, two[1])


def test_another_rank_still_writing_its_rng_state_is_refused(
    two: tuple[Path, Path], tmp_path: Path
) -> None:
    (two[1] / "rng_state_0.pth").unlink()  # rank 0 wrote trainer_state.json; no barrier
    assert "rng_state_0.pth is missing" in refused(tmp_path, two[1])


def test_trainer_state_of_another_step_is_refused(two: tuple[Path, Path], tmp_path: Path) -> None:
    (two[1] / "trainer_state.json").write_text(json.dumps({"global_step": 150}))
    reason = refused(tmp_path, two[1])
    assert reason == "trainer_state.json says global_step 150, the directory is checkpoint-200"


def test_trainer_state_cut_short_is_refused(two: tuple[Path, Path], tmp_path: Path) -> None:
    cut(two[1] / "trainer_state.json")
    assert "trainer_state.json is not valid JSON" in refused(tmp_path, two[1])


def test_a_staging_dir_of_an_atomic_save_is_never_chosen(
    two: tuple[Path, Path], tmp_path: Path, layouts: ModuleType
) -> None:
    whole = layouts.write("hf", tmp_path, 300)
    staging = whole.rename(tmp_path / "tmp-checkpoint-300")  # transformers 4.36-4.38
    (two[1] / "trainer_state.json").unlink()
    assert "staging directory" in refused(tmp_path, staging)


def test_every_shard_the_index_names_must_be_there(
    two: tuple[Path, Path], tmp_path: Path, layouts: ModuleType
) -> None:
    (two[1] / "model.safetensors").unlink()
    shard = "model-00001-of-00002.safetensors"
    (two[1] / shard).write_bytes(layouts.safetensors({"a": 8}))
    index = {"metadata": {}, "weight_map": {"a": shard, "b": "model-00002-of-00002.safetensors"}}
    (two[1] / "model.safetensors.index.json").write_text(json.dumps(index))
    reason = refused(tmp_path, two[1])
    assert (
        reason
        == "model-00002-of-00002.safetensors, named in model.safetensors.index.json, is missing"
    )


def test_a_deepspeed_save_inside_is_judged_through_latest(
    two: tuple[Path, Path], tmp_path: Path, layouts: ModuleType
) -> None:
    layouts.write("deepspeed", two[1], 200)  # Trainer under DeepSpeed: tag dir + latest inside
    assert (found := latest(tmp_path)) is not None and found.path == two[1]
    (two[1] / "latest").write_text("global_step300")
    assert refused(tmp_path, two[1]) == "latest names global_step300, which does not exist"


def test_an_output_dir_with_a_final_state_still_lists_its_checkpoints(
    two: tuple[Path, Path], tmp_path: Path
) -> None:
    (tmp_path / "trainer_state.json").write_text(json.dumps({"global_step": 200}))  # save_state()
    assert [ck.path for ck in scan(tmp_path)] == [two[1], two[0]]


def test_a_checkpoint_dir_given_directly_is_judged_alone(two: tuple[Path, Path]) -> None:
    assert [(ck.path, ck.complete) for ck in scan(two[0])] == [(two[0], True)]
