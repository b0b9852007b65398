"""The checkpoint vocabulary: formats, one judged checkpoint, and the error for a bad root.

Standard library only: a Slurm TaskProlog imports this package and must start fast."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from hpresil.errors import HpresilError


class Format(StrEnum):
    LIGHTNING = "lightning"
    HF = "hf"
    DEEPSPEED = "deepspeed"
    MEGATRON = "megatron"
    DCP = "dcp"
    NEMO = "nemo"
    MANIFEST = "hpresil"


@dataclass(frozen=True)
class Checkpoint:
    """One candidate under a checkpoint root, judged."""

    path: Path  # what a job passes to its framework's resume argument (file or directory)
    step: int | None
    format: Format
    complete: bool
    reason: str | None  # why it was rejected (None when complete)
    committed_at: float | None  # mtime of the file whose writing committed it


class CheckpointRootError(HpresilError):
    """The directory to scan does not exist, is not a directory, or cannot be listed."""

    exit_code = 2


def rejected(path: Path, step: int | None, fmt: Format, reason: str) -> Checkpoint:
    return Checkpoint(path, step, fmt, complete=False, reason=reason, committed_at=None)


def accepted(path: Path, step: int | None, fmt: Format, commit: Path) -> Checkpoint:
    """A complete checkpoint; ``commit`` is the file written last (its mtime is kept)."""
    try:
        committed_at: float | None = os.stat(commit).st_mtime
    except OSError:
        committed_at = None
    return Checkpoint(path, step, fmt, complete=True, reason=None, committed_at=committed_at)
