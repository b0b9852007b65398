"""``step-<N>`` directories and files that no framework names: torch DCP saves laid out
like torchtitan's (``<dump_folder>/checkpoint/step-<N>/``, see :mod:`hpresil.ckpt.dcp`)
and checkpoints committed by an hpresil manifest (:mod:`hpresil.ckpt.manifest`, which
is written last). The manifest itself is verified by :mod:`hpresil.ckpt.scan`, for
every format that carries one."""

from __future__ import annotations

import re
from pathlib import Path

from hpresil.ckpt import dcp, manifest
from hpresil.ckpt._files import listdir
from hpresil.ckpt.model import Checkpoint, Format, accepted, rejected

NAME = re.compile(r"step[-_]?(\d+)")


def judge(path: Path, step: int | None) -> Checkpoint:
    if not path.is_dir():
        where = manifest.location(path)
        if not where.exists():
            why = f"no {where.name} beside it (hpresil writes it last)"
            return rejected(path, step, Format.MANIFEST, why)
        return accepted(path, step, Format.MANIFEST, where)
    listing = listdir(path)
    if dcp.looks_like(listing):
        reason = dcp.check(listing)
        if reason is not None:
            return rejected(path, step, Format.DCP, reason)
        return accepted(path, step, Format.DCP, path / dcp.METADATA)
    if manifest.MANIFEST_NAME in listing:
        return accepted(path, step, Format.MANIFEST, path / manifest.MANIFEST_NAME)
    reason = f"no {manifest.MANIFEST_NAME} (hpresil writes it last) and no DCP {dcp.METADATA}"
    return rejected(path, step, Format.MANIFEST, reason)


def judge_orphan_manifest(path: Path, step: int | None) -> Checkpoint:
    """A ``<file>.hpresil-manifest.json`` whose file is gone."""
    reason = f"{path.name} is missing; only its manifest is left"
    return rejected(path, step, Format.MANIFEST, reason)
