"""DeepSpeed ``engine.save_checkpoint`` tags (``global_step<N>/``) and the ``latest`` pointer.

Source: microsoft/DeepSpeed ``deepspeed/runtime/engine.py`` (``save_checkpoint``,
``_get_ckpt_name``, ``_get_rank_zero_ckpt_name``, ``load_checkpoint``). Layout::

    save_dir/latest                      # the tag, no newline; load_checkpoint strips it
    save_dir/global_step500/             # tag = f"global_step{self.global_steps}"
        mp_rank_00_model_states.pt       # per model-parallel rank (ZeRO-3: per DP rank,
                                         #   zero_pp_rank_<d>_mp_rank_00_model_states.pt)
        [bf16_]zero_pp_rank_<d>_mp_rank_00_optim_states.pt   # per DP rank (ZeRO)

Write order: rank 0 creates the directory, barrier, every rank writes its model-state
file and its ZeRO optimizer shard (plain ``torch.save``), ``checkpoint_engine.commit``,
then **rank 0 writes ``latest``** (the commit point), then a final barrier.
``load_checkpoint(tag=None)`` trusts ``latest`` alone. Older tags stay on disk.

So: a tag newer than the one ``latest`` names was never committed; ``latest`` naming a
missing tag is a broken pointer; no ``latest`` at all means nothing was committed.
``latest`` is rewritten in place (``open(..., 'w')``), so a crash can leave it empty:
then it names nothing and every tag is judged by its files. And because there is no
barrier between the other ranks' shard writes and rank 0 writing ``latest``, a
committed tag can still miss a shard: every file must be a whole ``torch.save``
archive, and there must be one ZeRO shard per DP rank, ``dp_world_size`` being what
``mp_rank_00_model_states.pt`` records (``load_checkpoint`` asks for exactly that many,
``_get_all_zero_checkpoint_names``).
Old DeepSpeed names the shard ``..._mp_rank_00optim_states.pt`` (no underscore); both
are accepted, as the loader does.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from hpresil.ckpt import torchzip
from hpresil.ckpt._files import Listing, first_empty, listdir, newest_mtime, read_small
from hpresil.ckpt.model import Checkpoint, Format, accepted, rejected

LATEST = "latest"
RECOVERY_SCRIPT = "zero_to_fp32.py"  # copied into the save directory before ``latest``
TAG = re.compile(r"global_step(\d+)")
_TAG_STEP = re.compile(r"(?:global_step|step[-_]?)(\d+)")  # default tags, and step-N ones
_OPTIM = re.compile(r"(?:bf16_)?zero_pp_rank_(\d+)_mp_rank_(\d+)_?optim_states\.pt")
_ZERO3_MODEL = re.compile(r"zero_pp_rank_(\d+)_mp_rank_(\d+)_model_states\.pt")
_MP_MODEL = re.compile(r"mp_rank_(\d+)_model_states\.pt")


@dataclass(frozen=True)
class Pointer:
    """What ``latest`` in a save directory says."""

    tag: str | None  # the tag it names
    problem: str | None  # why it names nothing
    missing: bool = False  # no pointer at all: nothing was ever committed here

    @property
    def step(self) -> int | None:
        m = _TAG_STEP.fullmatch(self.tag or "")
        return int(m.group(1)) if m else None


def read_pointer(save_dir: Path, listing: Listing) -> Pointer:
    entry = listing.get(LATEST)
    if entry is None or not entry.is_file():
        why = f"no {LATEST} file (rank 0 writes it after every rank's files)"
        return Pointer(None, why, missing=True)
    try:
        tag = read_small(save_dir / LATEST).strip()
    except OSError as exc:  # discovery never raises: the tags are judged by their files
        return Pointer(None, f"{LATEST} unreadable: {exc.strerror or exc}")
    if not tag or "/" in tag or "\n" in tag:
        return Pointer(None, f"{LATEST} is empty or unreadable ({tag[:40]!r})")
    return Pointer(tag, None)


def judge_tag(path: Path, step: int | None, pointer: Pointer | None) -> Checkpoint:
    """A tag directory; ``pointer`` is the save directory's ``latest`` (None when the
    tag directory itself was given, with no save directory around it)."""
    if pointer is not None:
        if pointer.missing:
            return rejected(path, step, Format.DEEPSPEED, f"not committed: {pointer.problem}")
        committed = pointer.step  # None when latest is unreadable: the files must tell
        if step is not None and committed is not None and step > committed:
            why = f"not committed ({LATEST} names {pointer.tag})"
            return rejected(path, step, Format.DEEPSPEED, why)
    listing = listdir(path)
    reason, recorded = _check_files(path, listing)
    if reason is not None:
        return rejected(path, step, Format.DEEPSPEED, reason)
    if step is None:
        step = recorded
    if pointer is not None and pointer.tag == path.name:
        return accepted(path, step, Format.DEEPSPEED, path.parent / LATEST)
    return accepted(path, step, Format.DEEPSPEED, newest_mtime(path, listing))


def is_tag(path: Path) -> bool:
    """Whether ``path`` is a tag directory (it holds model states)."""
    try:
        return any(n.endswith("model_states.pt") for n in os.listdir(path))
    except OSError:
        return False


def recorded_step(path: Path) -> int | None:
    """``global_steps`` recorded in a tag's model states (for tags named otherwise);
    None when it cannot be read (the tag is judged, and refused, later)."""
    try:
        models = sorted(n for n in os.listdir(path) if n.endswith("model_states.pt"))
        return torchzip.ints(path / models[0], ("global_steps",)).get("global_steps")
    except (OSError, IndexError):
        return None


def judge_missing(path: Path, step: int | None) -> Checkpoint:
    """The tag ``latest`` names but that is not on disk."""
    reason = f"{LATEST} names {path.name}, which does not exist"
    return rejected(path, step, Format.DEEPSPEED, reason)


def check_save_dir(save_dir: Path, listing: Listing) -> str | None:
    """A save directory nested in another format's checkpoint (Lightning's DeepSpeed
    strategy, the HF Trainer under DeepSpeed): the tag ``latest`` names must be whole."""
    pointer = read_pointer(save_dir, listing)
    if pointer.problem is not None or pointer.tag is None:
        return pointer.problem
    if pointer.tag not in listing:
        return f"{LATEST} names {pointer.tag}, which does not exist"
    reason, _ = _check_files(save_dir / pointer.tag, listdir(save_dir / pointer.tag))
    return None if reason is None else f"{pointer.tag}: {reason}"


def _check_files(path: Path, listing: Listing) -> tuple[str | None, int | None]:
    """Why the tag directory is not whole (or None), and the ``global_steps`` recorded."""
    files = sorted(n for n in listing if n.endswith(".pt"))
    models = [n for n in files if n.endswith("model_states.pt")]
    if not models:
        return "no *model_states.pt (every rank writes its model states first)", None
    empty = first_empty(listing, files)
    if empty is not None:
        return f"{empty} is a zero-byte file (a rank died while writing it)", None
    for name in files:
        reason = torchzip.check(path / name)
        if reason is not None:
            return reason, None
    recorded = torchzip.ints(path / models[0], ("dp_world_size", "mp_world_size", "global_steps"))
    reason = _ranks(files, recorded)
    return reason, recorded.get("global_steps")


def _ranks(files: list[str], recorded: dict[str, int]) -> str | None:
    """One model-state file per MP rank and one ZeRO shard per DP rank of each."""
    mp = {int(m.group(1)) for n in files if (m := _MP_MODEL.fullmatch(n))}
    mp_size = recorded.get("mp_world_size")
    if mp and mp != set(range(mp_size or len(mp))):
        return f"model states for MP ranks {sorted(mp)}, expected {mp_size or len(mp)} ranks"
    for pattern, what in ((_OPTIM, "ZeRO optimizer shards"), (_ZERO3_MODEL, "ZeRO-3 model shards")):
        per_mp: dict[int, set[int]] = defaultdict(set)
        for name in files:
            m = pattern.fullmatch(name)
            if m:
                per_mp[int(m.group(2))].add(int(m.group(1)))
        want = recorded.get("dp_world_size")
        for mp_rank, dp in sorted(per_mp.items()):
            size = want or max(dp) + 1
            if dp != set(range(size)):
                have = f"{len(dp)} of {size}"
                src = " (dp_world_size in the model states)" if want else ""
                return f"{have} {what} for MP rank {mp_rank}{src}"
    return None
