"""Megatron-LM / Megatron-Core checkpoints (``iter_<N>/`` and the tracker file).

Source: NVIDIA/Megatron-LM ``megatron/training/checkpointing.py``
(``get_checkpoint_tracker_filename``, ``get_checkpoint_name``, ``read_metadata``,
``save_checkpoint``) and ``megatron/core/dist_checkpointing/serialization.py``
(``save``), ``core.py`` (``CONFIG_FNAME = 'metadata.json'``).

The tracker ``latest_checkpointed_iteration.txt`` holds the iteration (or
``release``), no newline; loading reads it and never scans for ``iter_*``.

Legacy ``--ckpt-format torch``: every rank ``torch.save``s
``iter_%07d/mp_rank_<TP>[_<PP>[_<EP>]]/model_optim_rng.pt`` (plus ``distrib_optim.pt``
with the distributed optimizer), ``barrier()``, then **rank 0 writes the tracker**
(``iter_finalize_fn``): the commit point. Such a directory has no marker of its own.

``--ckpt-format torch_dist``: rank 0's ``common.pt`` (versions before 2026-07), every
rank's ``__<rank>_<k>.distcp``, the coordinator's ``.metadata`` (torch DCP, see
:mod:`hpresil.ckpt.dcp`), then **rank 0 writes ``metadata.json``**
(``{"sharded_backend": "torch_dist", ...}``, "written only if the checkpoint is
complete"), barrier, then the tracker.

Rules: an ``iter_`` newer than the tracker's iteration was never committed; a tracker
naming a missing directory is broken; older ``iter_`` directories (Megatron keeps
them) are valid when their files are whole. With no tracker at all (nothing was ever
committed there) a ``torch_dist`` directory still carries its own commit point
(``metadata.json``); a legacy one does not and is refused. The tracker is rewritten in
place (``open(..., 'w')``), so a crash can leave it empty: such a tracker names
nothing, and every directory is judged by its files. A legacy directory must hold one
``model_optim_rng.pt`` per (TP, PP[, EP]) rank, the full grid, sized by
``tensor_model_parallel_size`` / ``pipeline_model_parallel_size`` from the pickled
``args`` when they can be read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import product
from pathlib import Path

from hpresil.ckpt import dcp, torchzip
from hpresil.ckpt._files import Listing, first_empty, listdir, newest_mtime, read_small
from hpresil.ckpt.model import Checkpoint, Format, accepted, rejected

TRACKER = "latest_checkpointed_iteration.txt"
ITER = re.compile(r"iter_(\d{7,})")
RELEASE = "release"
CONFIG = "metadata.json"
_RANK_DIR = re.compile(r"mp_rank_(\d{2})(?:_(\d{3}))?(?:_(\d{3}))?")
_MODEL = "model_optim_rng.pt"
_OPTIM = "distrib_optim.pt"
_ARGS = ("tensor_model_parallel_size", "pipeline_model_parallel_size")


@dataclass(frozen=True)
class Tracker:
    iteration: int | None  # None with ``release`` or when there is no readable tracker
    release: bool
    problem: str | None  # why there is no usable tracker
    missing: bool = False  # no tracker at all: nothing was ever committed here

    @property
    def target(self) -> str | None:
        """The directory the tracker names."""
        if self.release:
            return RELEASE
        return None if self.iteration is None else dir_name(self.iteration)


def read_tracker(save_dir: Path, listing: Listing) -> Tracker:
    if TRACKER not in listing:
        return Tracker(None, False, f"no {TRACKER} (rank 0 writes it after the save)", True)
    try:
        text = read_small(save_dir / TRACKER).strip()
    except OSError as exc:  # discovery never raises: the directories are judged by their files
        return Tracker(None, False, f"{TRACKER} unreadable: {exc.strerror or exc}")
    if text == RELEASE:
        return Tracker(None, True, None)
    if not text.isdigit():
        return Tracker(None, False, f"{TRACKER} is empty or unreadable ({text[:40]!r})")
    return Tracker(int(text), False, None)


def dir_name(iteration: int) -> str:
    return f"iter_{iteration:07d}"


def judge_iter(path: Path, step: int | None, tracker: Tracker | None) -> Checkpoint:
    """An ``iter_`` (or ``release``) directory; ``tracker`` is None when the directory
    itself was given, with no save directory around it."""
    if tracker is not None and tracker.problem is None and not tracker.release:
        committed = tracker.iteration
        if step is not None and committed is not None and step > committed:
            why = f"not committed (tracker names iteration {committed})"
            return rejected(path, step, Format.MEGATRON, why)
    listing = listdir(path)
    dist = CONFIG in listing or dcp.looks_like(listing)
    if tracker is not None and tracker.missing and not dist:
        why = f"not committed: {tracker.problem}; a legacy directory has no marker of its own"
        return rejected(path, step, Format.MEGATRON, why)
    reason = check_dist(path, listing) if dist else _check_legacy(path, listing)
    if reason is not None:
        return rejected(path, step, Format.MEGATRON, reason)
    if tracker is not None and path.name == tracker.target:
        commit = path.parent / TRACKER
    elif dist:
        commit = path / CONFIG
    else:
        commit = newest_mtime(path, listing)
    return accepted(path, step, Format.MEGATRON, commit)


def judge_missing(path: Path, step: int | None) -> Checkpoint:
    reason = f"tracker names {path.name}, which does not exist"
    return rejected(path, step, Format.MEGATRON, reason)


def check_dist(path: Path, listing: Listing) -> str | None:
    if CONFIG not in listing:
        return f"no {CONFIG} (rank 0 writes it after every shard and .metadata)"
    try:
        with open(path / CONFIG, "rb") as fh:
            config = json.loads(fh.read())
    except ValueError:
        return f"{CONFIG} is not valid JSON (cut short?)"
    if not isinstance(config, dict) or "sharded_backend" not in config:
        return f"{CONFIG} names no sharded_backend"
    reason = dcp.check(listing)
    if reason is None and "common.pt" in listing:
        reason = torchzip.check(path / "common.pt")
    return reason


def _check_legacy(path: Path, listing: Listing) -> str | None:
    ranks: dict[tuple[int, ...], str] = {}
    for name in listing:
        m = _RANK_DIR.fullmatch(name)
        if m:
            ranks[tuple(int(g) for g in m.groups() if g is not None)] = name
    if not ranks:
        return f"no mp_rank_* directory and no {CONFIG}"
    if len({len(r) for r in ranks}) > 1:
        return "mp_rank_* directories of different shapes (mixed saves)"
    for name in sorted(ranks.values()):
        reason = _check_rank(path / name)
        if reason is not None:
            return f"{name}/: {reason}"
    first = path / ranks[min(ranks)] / _MODEL
    return _grid(ranks, torchzip.ints(first, _ARGS))


def _check_rank(rank_dir: Path) -> str | None:
    listing = listdir(rank_dir)
    if _MODEL not in listing:
        return f"no {_MODEL} (the rank died before saving)"
    empty = first_empty(listing, [n for n in (_MODEL, _OPTIM) if n in listing])
    if empty is not None:
        return f"{empty} is a zero-byte file"
    for name in (_MODEL, _OPTIM):
        if name in listing:
            reason = torchzip.check(rank_dir / name)
            if reason is not None:
                return reason
    return None


def _grid(ranks: dict[tuple[int, ...], str], args: dict[str, int]) -> str | None:
    """The rank directories form the full TP x PP (x EP) grid the args describe."""
    dims = len(next(iter(ranks)))
    sizes = [max(r[d] for r in ranks) + 1 for d in range(dims)]
    for d, key in enumerate(_ARGS[:dims]):
        recorded = args.get(key)
        if recorded is not None:
            sizes[d] = max(sizes[d], recorded)
    missing = sorted(set(product(*(range(s) for s in sizes))) - set(ranks))
    if missing:
        labels = ("TP", "PP", "EP")[:dims]
        shape = " x ".join(f"{label} {size}" for label, size in zip(labels, sizes, strict=True))
        return f"{len(missing)} of {len(missing) + len(ranks)} rank directories missing ({shape})"
    return None
