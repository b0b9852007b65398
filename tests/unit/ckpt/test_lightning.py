"""PyTorch Lightning ``*.ckpt``: whole ``torch.save`` archives, last.ckpt, sharded dirs."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from types import ModuleType

from hpresil.ckpt import Format, latest, scan
from tests.unit.ckpt.conftest import cut


def ckpt(layouts: ModuleType, root: Path, name: str, global_step: int) -> Path:
    """A Lightning checkpoint file as ``torch.save`` writes it, ``global_step`` inside."""
    path = root / name
    path.write_bytes(layouts.torch_save({"epoch": 0, "global_step": global_step}))
    return path


def reasons(root: Path) -> dict[str, str | None]:
    return {ck.path.name: ck.reason for ck in scan(root)}


def test_a_file_cut_short_before_2_4_is_refused_for_the_previous_one(
    tmp_path: Path, layouts: ModuleType
) -> None:
    good = ckpt(layouts, tmp_path, "epoch=0-step=100.ckpt", 100)
    cut(ckpt(layouts, tmp_path, "epoch=0-step=200.ckpt", 200))  # written in place, killed
    found = latest(tmp_path)
    assert found is not None and found.path == good and found.format is Format.LIGHTNING
    assert "not a complete zip archive" in (reasons(tmp_path)["epoch=0-step=200.ckpt"] or "")


def test_a_zero_byte_file_is_refused(tmp_path: Path, layouts: ModuleType) -> None:
    ckpt(layouts, tmp_path, "epoch=0-step=100.ckpt", 100)
    (tmp_path / "epoch=0-step=200.ckpt").touch()
    assert reasons(tmp_path)["epoch=0-step=200.ckpt"] == "epoch=0-step=200.ckpt is a zero-byte file"
    assert (found := latest(tmp_path)) is not None and found.step == 100


def test_a_zip_that_is_not_a_torch_save_file_is_refused(
    tmp_path: Path, layouts: ModuleType
) -> None:
    ckpt(layouts, tmp_path, "epoch=0-step=100.ckpt", 100)
    with zipfile.ZipFile(tmp_path / "epoch=0-step=200.ckpt", "w") as zf:
        zf.writestr("notes.txt", "hello")
    assert "not a torch.save file" in (reasons(tmp_path)["epoch=0-step=200.ckpt"] or "")
    assert (found := latest(tmp_path)) is not None and found.step == 100


def test_the_step_reported_is_global_step_inside_the_file(
    tmp_path: Path, layouts: ModuleType
) -> None:
    ckpt(layouts, tmp_path, "epoch=0-step=100.ckpt", 100)
    ckpt(layouts, tmp_path, "last.ckpt", 300)  # save_last=True: a copy, no step in its name
    found = latest(tmp_path)
    assert found is not None and (found.path.name, found.step) == ("last.ckpt", 300)


def test_hpc_requeue_checkpoints_are_ordered_by_the_step_inside(
    tmp_path: Path, layouts: ModuleType
) -> None:
    ckpt(layouts, tmp_path, "hpc_ckpt_1.ckpt", 500)
    ckpt(layouts, tmp_path, "hpc_ckpt_2.ckpt", 900)
    ckpt(layouts, tmp_path, "epoch=1-step=700.ckpt", 700)
    assert [ck.step for ck in scan(tmp_path)] == [900, 700, 500]


def test_a_last_link_is_not_a_second_candidate(tmp_path: Path, layouts: ModuleType) -> None:
    target = ckpt(layouts, tmp_path, "epoch=0-step=200.ckpt", 200)
    os.symlink(target.name, tmp_path / "last.ckpt")  # save_last="link"
    assert [ck.path.name for ck in scan(tmp_path)] == ["epoch=0-step=200.ckpt"]


def test_a_broken_last_link_is_refused_and_the_top_k_file_chosen(
    tmp_path: Path, layouts: ModuleType
) -> None:
    good = ckpt(layouts, tmp_path, "epoch=0-step=100.ckpt", 100)
    os.symlink("epoch=0-step=200.ckpt", tmp_path / "last.ckpt")  # its target was removed
    assert reasons(tmp_path)["last.ckpt"] == "last.ckpt is a broken symlink"
    assert (found := latest(tmp_path)) is not None and found.path == good


def test_a_collision_version_is_newer_than_the_plain_name(
    tmp_path: Path, layouts: ModuleType
) -> None:
    ckpt(layouts, tmp_path, "epoch=0-step=100.ckpt", 100)
    newer = ckpt(layouts, tmp_path, "epoch=0-step=100-v1.ckpt", 100)
    assert (found := latest(tmp_path)) is not None and found.path == newer


def test_an_fsdp_sharded_dir_needs_meta_pt_written_after_the_shards(
    tmp_path: Path, layouts: ModuleType
) -> None:
    ckpt(layouts, tmp_path, "epoch=0-step=100.ckpt", 100)
    sharded = tmp_path / "epoch=0-step=200.ckpt"
    sharded.mkdir()
    shards, metadata = layouts.dcp_files(2)
    for name, data in shards:
        (sharded / name).write_bytes(data)
    (sharded / ".metadata").write_bytes(metadata)
    assert "no meta.pt" in (reasons(tmp_path)["epoch=0-step=200.ckpt"] or "")
    assert (found := latest(tmp_path)) is not None and found.step == 100
    (sharded / "meta.pt").write_bytes(layouts.torch_save({"global_step": 200}))
    found = latest(tmp_path)
    assert found is not None and (found.path, found.step) == (sharded, 200)


def test_a_deepspeed_strategy_dir_is_judged_through_its_latest_pointer(
    tmp_path: Path, layouts: ModuleType
) -> None:
    ckpt(layouts, tmp_path, "epoch=0-step=100.ckpt", 100)
    ds = tmp_path / "epoch=0-step=200.ckpt"
    tag = layouts.write("deepspeed", ds, 200, stop_after=4)  # all but latest
    tag.rename(ds / "checkpoint")  # Lightning's strategy saves with tag="checkpoint"
    assert "no latest file" in (reasons(tmp_path)["epoch=0-step=200.ckpt"] or "")
    (ds / "latest").write_text("checkpoint")
    assert (found := latest(tmp_path)) is not None and found.path == ds
    (ds / "checkpoint" / "zero_pp_rank_1_mp_rank_00_optim_states.pt").unlink()
    assert "1 of 2 ZeRO optimizer shards" in (reasons(tmp_path)["epoch=0-step=200.ckpt"] or "")
