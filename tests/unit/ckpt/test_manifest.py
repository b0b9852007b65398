"""The hpresil manifest (written last, atomically) and fencing of stale writers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import ModuleType

import pytest

from hpresil.ckpt import Format, latest, manifest, scan
from hpresil.ckpt.manifest import MANIFEST_NAME, ManifestError


def save(root: Path, step: int) -> Path:
    path = root / f"step-{step}"
    (path / "shard").mkdir(parents=True)
    (path / "model.bin").write_bytes(b"\x01" * 100)
    (path / "shard" / "rank0.bin").write_bytes(b"\x02" * 50)
    return path


def test_write_records_every_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = save(tmp_path, 7)
    where = manifest.write(path, 7, hashes=True, lease={"job_id": 1, "generation": 2, "token": "t"})
    assert where == path / MANIFEST_NAME
    data = json.loads(where.read_text())
    assert data["format_version"] == 1 and data["step"] == 7
    assert data["lease"] == {"job_id": 1, "generation": 2, "token": "t"}
    assert set(data["files"]) == {"model.bin", "shard/rank0.bin"}
    assert (
        data["files"]["model.bin"]["size"] == 100
        and len(data["files"]["model.bin"]["sha256"]) == 64
    )
    assert abs(data["written_at"] - time.time()) < 60
    assert sorted(p.name for p in path.iterdir()) == [MANIFEST_NAME, "model.bin", "shard"]
    assert manifest.verify(path) is None and manifest.verify(path, hashes=True) is None


def test_a_single_file_gets_its_manifest_beside_it(tmp_path: Path) -> None:
    model = tmp_path / "model_500.pt"
    model.write_bytes(b"x" * 10)
    where = manifest.write(model, 500)
    assert where.name == f"model_500.pt.{MANIFEST_NAME}"
    assert "sha256" not in json.loads(where.read_text())["files"]["model_500.pt"]
    assert manifest.verify(model) is None
    found = latest(tmp_path)
    assert found is not None and (found.path, found.step, found.format) == (
        model,
        500,
        Format.MANIFEST,
    )


def test_verify_says_what_changed(tmp_path: Path) -> None:
    path = save(tmp_path, 1)
    manifest.write(path, 1, hashes=True)
    (path / "model.bin").write_bytes(b"\x09" * 100)  # same size, other bytes
    assert manifest.verify(path) is None  # sizes only
    assert (
        manifest.verify(path, hashes=True) == "model.bin does not match its sha256 in the manifest"
    )
    (path / "model.bin").write_bytes(b"\x09" * 40)
    assert manifest.verify(path) == "model.bin is 40 bytes, the manifest recorded 100"
    (path / "shard" / "rank0.bin").unlink()
    assert manifest.verify(path) == "model.bin is 40 bytes, the manifest recorded 100"
    (path / "model.bin").write_bytes(b"\x09" * 100)
    assert manifest.verify(path) == "shard/rank0.bin is listed in the manifest but missing"


def test_verify_without_a_manifest_or_with_a_broken_one(tmp_path: Path) -> None:
    path = save(tmp_path, 1)
    assert manifest.verify(path) == f"no {MANIFEST_NAME}"
    (path / MANIFEST_NAME).write_text('{"format_version": 1, "st')
    assert manifest.verify(path) == f"{MANIFEST_NAME} is not valid JSON (cut short?)"
    (path / MANIFEST_NAME).write_text(json.dumps({"format_version": 2}))
    assert "not an hpresil manifest of format_version 1" in (manifest.verify(path) or "")


def test_writing_for_a_missing_checkpoint_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file or directory"):
        manifest.write(tmp_path / "nope", 1)


def test_a_manifest_may_not_point_outside_its_checkpoint(tmp_path: Path) -> None:
    path = save(tmp_path, 1)
    record = {"format_version": 1, "step": 1, "written_at": 0, "files": {"../x": {"size": 1}}}
    (path / MANIFEST_NAME).write_text(json.dumps(record))
    assert manifest.verify(path) == "manifest lists '../x', outside the checkpoint"


def test_hpresil_format_without_its_manifest_was_not_committed(tmp_path: Path) -> None:
    manifest.write(save(tmp_path, 1), 1)
    newer = save(tmp_path, 2)  # the job died before committing
    rows = {ck.path: ck for ck in scan(tmp_path)}
    assert rows[newer].reason == f"no {MANIFEST_NAME} (hpresil writes it last) and no DCP .metadata"
    assert (found := latest(tmp_path)) is not None and found.step == 1


def test_a_framework_checkpoint_carrying_a_manifest_must_match_it(
    tmp_path: Path, layouts: ModuleType
) -> None:
    layouts.write("hf", tmp_path, 100)
    newer = layouts.write("hf", tmp_path, 200)
    manifest.write(newer, 200, hashes=True)
    (newer / "scheduler.pt").write_bytes(layouts.torch_save({"last_epoch": 9}) + b"extra")
    (row,) = [ck for ck in scan(tmp_path) if ck.path == newer]
    assert row.format is Format.HF and not row.complete
    assert (row.reason or "").startswith("hpresil manifest: scheduler.pt is ")
    assert (found := latest(tmp_path)) is not None and found.step == 100


def test_a_manifest_of_another_step_is_refused(tmp_path: Path) -> None:
    manifest.write(save(tmp_path, 1), 1)
    manifest.write(save(tmp_path, 2), 5)
    (row, _) = scan(tmp_path)
    assert row.reason == "hpresil manifest: manifest records step 5, the checkpoint is step 2"


def test_hashes_are_checked_only_when_asked(tmp_path: Path) -> None:
    manifest.write(save(tmp_path, 1), 1, hashes=True)
    newer = save(tmp_path, 2)
    manifest.write(newer, 2, hashes=True)
    (newer / "model.bin").write_bytes(b"\x07" * 100)  # bit rot, same size
    assert (found := latest(tmp_path)) is not None and found.step == 2
    assert (found := latest(tmp_path, verify_hashes=True)) is not None and found.step == 1


# --- fencing ------------------------------------------------------------------------


def lease(root: Path, *, job_id: int = 42, generation: int = 3, taken_at: float) -> None:
    (root / ".hpresil").mkdir(exist_ok=True)
    record = {
        "job_id": job_id,
        "generation": generation,
        "token": "g3",
        "node": "n2",
        "taken_at": taken_at,
    }
    (root / ".hpresil" / "lease.json").write_text(json.dumps(record))


def stale_save(root: Path, step: int, *, job_id: int = 42, generation: int = 2) -> Path:
    path = save(root, step)
    manifest.write(path, step, lease={"job_id": job_id, "generation": generation, "token": "g2"})
    return path


def test_a_checkpoint_written_by_a_fenced_generation_is_refused(tmp_path: Path) -> None:
    older = stale_save(tmp_path, 1)  # generation 2's own, before generation 3 took over
    lease(tmp_path, taken_at=time.time())
    time.sleep(0.01)
    fenced = stale_save(tmp_path, 2)  # the old instance kept going
    rows = {ck.path: ck for ck in scan(tmp_path)}
    assert rows[fenced].reason == (
        "hpresil manifest: written by fenced generation 2 after generation 3 took over"
    )
    assert (found := latest(tmp_path)) is not None and found.path == older


def test_the_fencing_rule_needs_the_same_job_a_lower_generation_and_a_later_write(
    tmp_path: Path,
) -> None:
    stale_save(tmp_path, 1, generation=3)  # the current generation's own
    stale_save(tmp_path, 2, job_id=7)  # another job's lease
    lease(tmp_path, taken_at=time.time() - 3600)
    assert all(ck.complete for ck in scan(tmp_path))
    lease(tmp_path, taken_at=time.time() + 3600)  # every write came before the takeover
    stale_save(tmp_path, 3)
    assert all(ck.complete for ck in scan(tmp_path))


def test_an_unreadable_lease_disables_the_rule(tmp_path: Path) -> None:
    (tmp_path / ".hpresil").mkdir()
    (tmp_path / ".hpresil" / "lease.json").write_text("{not json")
    stale_save(tmp_path, 1)
    assert (found := latest(tmp_path)) is not None and found.step == 1
