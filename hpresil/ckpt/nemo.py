"""NeMo checkpoints and the ``-unfinished`` marker protocol.

Source: NVIDIA/NeMo ``nemo/lightning/pytorch/callbacks/model_checkpoint.py``
(``UNFINISHED_CHECKPOINT_SUFFIX = "-unfinished"``, ``_save_checkpoint``,
``is_checkpoint_unfinished``, ``_remove_unfinished_checkpoints``),
``nemo/lightning/ckpt_utils.py`` (``ckpt_to_dir``: the Lightning name without
``.ckpt``; ``WEIGHTS_PATH = "weights"``, ``CONTEXT_PATH = "context"``) and NeMo 1.x
``nemo/utils/callbacks/nemo_model_checkpoint.py`` (same suffix).

Write order: rank 0 touches ``<checkpoint path without .ckpt>-unfinished``, barrier,
the save (NeMo 2: ``weights/`` holds a Megatron ``torch_dist`` checkpoint,
:mod:`hpresil.ckpt.megatron`; rank 0 dumps ``context/``), then after a barrier (for
async saves, when the background save finalizes) the marker is **removed**: the
commit point. Removing old top-k checkpoints uses the same marker. On ``setup()``
NeMo deletes every checkpoint that still has one.

So a checkpoint with a sibling marker is never valid, whatever its format (the rule is
applied to every candidate by :mod:`hpresil.ckpt.scan`), and a NeMo 2 directory
needs ``weights/metadata.json`` and a whole DCP save under ``weights/``.
"""

from __future__ import annotations

from pathlib import Path

from hpresil.ckpt import megatron
from hpresil.ckpt._files import listdir
from hpresil.ckpt.model import Checkpoint, Format, accepted, rejected

MARKER_SUFFIX = "-unfinished"
WEIGHTS = "weights"


def marker_for(name: str) -> str:
    """The marker file name NeMo creates beside the checkpoint called ``name``."""
    return name.removesuffix(".ckpt") + MARKER_SUFFIX


def unfinished(name: str) -> str:
    return f"unfinished: marker {marker_for(name)} present (removed when the save completes)"


def looks_like(path: Path) -> bool:
    return (path / WEIGHTS).is_dir()


def judge(path: Path, step: int | None) -> Checkpoint:
    listing = listdir(path)
    if WEIGHTS not in listing:
        return rejected(path, step, Format.NEMO, f"no {WEIGHTS}/ directory")
    reason = megatron.check_dist(path / WEIGHTS, listdir(path / WEIGHTS))
    if reason is not None:
        return rejected(path, step, Format.NEMO, f"{WEIGHTS}/: {reason}")
    return accepted(path, step, Format.NEMO, path / WEIGHTS / megatron.CONFIG)
