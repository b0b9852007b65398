"""torch DCP directories (``.metadata`` renamed last) and NeMo's ``-unfinished`` marker."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import ModuleType

from hpresil.ckpt import Format, latest, scan
from tests.unit.ckpt.conftest import cut


def reason_for(root: Path, path: Path) -> str | None:
    (row,) = [ck for ck in scan(root) if ck.path == path]
    return row.reason


def test_a_dcp_directory_given_directly_is_one_checkpoint(
    tmp_path: Path, layouts: ModuleType
) -> None:
    path = layouts.write("dcp", tmp_path, 100)
    named = path.rename(tmp_path / "final-weights")  # DCP imposes no naming
    found = latest(named)
    assert found is not None and (found.path, found.format, found.step) == (named, Format.DCP, None)
    assert found.committed_at == (named / ".metadata").stat().st_mtime


def test_a_shard_rewritten_under_an_old_metadata_is_refused(
    tmp_path: Path, layouts: ModuleType
) -> None:
    layouts.write("dcp", tmp_path, 100)
    path = layouts.write("dcp", tmp_path, 200)
    cut(path / "__0_0.distcp")  # overwrite=True: a new save truncates it, .metadata is old
    reason = reason_for(tmp_path, path) or ""
    assert reason.startswith("__0_0.distcp is ") and "but .metadata needs" in reason
    assert (found := latest(tmp_path)) is not None and found.step == 100


def test_a_shard_named_in_metadata_must_exist(tmp_path: Path, layouts: ModuleType) -> None:
    layouts.write("dcp", tmp_path, 100)
    path = layouts.write("dcp", tmp_path, 200)
    (path / "__1_0.distcp").unlink()
    assert reason_for(tmp_path, path) == "__1_0.distcp, named in .metadata, is missing"


def test_an_empty_shard_no_item_points_into_is_fine(tmp_path: Path, layouts: ModuleType) -> None:
    path = layouts.write("dcp", tmp_path, 100)
    (path / "__2_0.distcp").write_bytes(b"")  # a rank whose plan was de-duplicated away
    assert (found := latest(tmp_path)) is not None and found.path == path


def test_metadata_cut_short_is_refused(tmp_path: Path, layouts: ModuleType) -> None:
    layouts.write("dcp", tmp_path, 100)
    path = layouts.write("dcp", tmp_path, 200)
    cut(path / ".metadata")
    assert reason_for(tmp_path, path) == ".metadata is cut short (unreadable pickle)"


def test_the_references_are_read_from_real_pickle_protocols(
    tmp_path: Path, layouts: ModuleType
) -> None:
    path = layouts.write("dcp", tmp_path, 100)
    shards = {p.name: p.stat().st_size for p in path.glob("*.distcp")}
    for protocol in (2, 3, 4, 5):
        storage = {
            "w": {
                "relative_path": "__0_0.distcp",
                "offset": 0,
                "length": shards["__0_0.distcp"] + 1,
            }
        }
        (path / ".metadata").write_bytes(pickle.dumps({"storage_data": storage}, protocol=protocol))
        assert "__0_0.distcp is" in (reason_for(tmp_path, path) or ""), protocol


def test_nemo_unfinished_marker_refuses_a_whole_looking_checkpoint(
    tmp_path: Path, layouts: ModuleType
) -> None:
    older = layouts.write("nemo", tmp_path, 100)
    newer = layouts.write("nemo", tmp_path, 200)
    (tmp_path / f"{newer.name}-unfinished").touch()  # an async save not finalized
    reason = reason_for(tmp_path, newer) or ""
    assert reason.startswith(f"unfinished: marker {newer.name}-unfinished present")
    found = latest(tmp_path)
    assert found is not None and (found.path, found.format, found.step) == (older, Format.NEMO, 100)


def test_nemo_needs_weights_metadata_json(tmp_path: Path, layouts: ModuleType) -> None:
    layouts.write("nemo", tmp_path, 100)
    newer = layouts.write("nemo", tmp_path, 200)
    (newer / "weights" / "metadata.json").unlink()
    assert (reason_for(tmp_path, newer) or "").startswith("weights/: no metadata.json")
    assert (found := latest(tmp_path)) is not None and found.step == 100


def test_the_unfinished_marker_applies_to_lightning_files_too(
    tmp_path: Path, layouts: ModuleType
) -> None:
    good = layouts.write("lightning", tmp_path, 100)
    newer = layouts.write("lightning", tmp_path, 200)
    (tmp_path / f"{newer.stem}-unfinished").touch()
    assert (found := latest(tmp_path)) is not None and found.path == good  # NeMo 1.x
