"""Every prefix of every framework's write order: a save cut off there is never chosen.

For each format, a complete checkpoint at step 100, then a second save at step 200
stopped after each operation of its order (scripts/lab-jobs/layouts.py ``plan``), with
and without the next operation left half done. ``latest`` must answer 100 until the
200 save is whole, and ``scan`` must say why 200 was refused."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from hpresil.ckpt import Format, latest, scan
from tests.unit.ckpt.conftest import load_layouts

LAYOUTS = load_layouts()
CASES = [
    (fmt, k, torn)
    for fmt in LAYOUTS.FORMATS
    for k in range(len(LAYOUTS.plan(fmt)))
    for torn in (False, True)
]
FORMAT_OF = {
    "lightning": Format.LIGHTNING,
    "hf": Format.HF,
    "deepspeed": Format.DEEPSPEED,
    "megatron": Format.MEGATRON,
    "megatron-legacy": Format.MEGATRON,
    "dcp": Format.DCP,
    "nemo": Format.NEMO,
    "hpresil": Format.MANIFEST,
}
# Formats whose commit point is a pointer rewritten in place: a crash while writing it
# leaves it empty, it then names nothing and the (whole) new directory is judged by its
# files.
POINTER_COMMIT = {"deepspeed", "megatron", "megatron-legacy"}


@pytest.mark.parametrize("fmt", LAYOUTS.FORMATS)
def test_a_whole_save_is_chosen_with_its_format_and_step(
    fmt: str, tmp_path: Path, layouts: ModuleType
) -> None:
    layouts.write(fmt, tmp_path, 100)
    path = layouts.write(fmt, tmp_path, 200)
    found = latest(tmp_path)
    assert found is not None
    assert (found.path, found.step, found.format) == (path, 200, FORMAT_OF[fmt])
    assert found.complete and found.reason is None and found.committed_at is not None
    assert [ck.step for ck in scan(tmp_path)] == [200, 100]


@pytest.mark.parametrize(("fmt", "k", "torn"), CASES, ids=lambda v: str(v))
def test_a_save_cut_off_is_never_chosen(
    fmt: str, k: int, torn: bool, tmp_path: Path, layouts: ModuleType
) -> None:
    older = layouts.write(fmt, tmp_path, 100)
    newer = layouts.write(fmt, tmp_path, 200, stop_after=k, torn=torn)
    last_op = k == len(layouts.plan(fmt)) - 1
    found = latest(tmp_path)
    assert found is not None
    if torn and last_op and fmt in POINTER_COMMIT:
        assert found.path == newer  # every file was written; the pointer is empty
        return
    assert found.path == older and found.step == 100
    refused = [ck for ck in scan(tmp_path) if ck.path == newer]
    for ck in refused:  # absent when the save had not made its directory or file yet
        assert not ck.complete and ck.reason and ck.committed_at is None
