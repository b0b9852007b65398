"""Hugging Face ``transformers.Trainer`` checkpoints (``checkpoint-<step>/``).

Source: huggingface/transformers ``src/transformers/trainer.py``
(``Trainer._save_checkpoint``, ``PREFIX_CHECKPOINT_DIR = "checkpoint"``) and
``src/transformers/trainer_utils.py`` (``get_last_checkpoint``). Write order, straight
into the final directory:

1. ``save_model()``: ``config.json``, weights (``model.safetensors`` or shards plus
   ``model.safetensors.index.json``; ``pytorch_model.bin`` without safetensors),
   tokenizer files, ``training_args.bin``;
2. ``_save_optimizer_and_scheduler()``: ``optimizer.pt``, ``scheduler.pt`` (under
   DeepSpeed: ``global_step<N>/`` + ``latest``; under FSDP: DCP directories);
3. ``_save_scaler()``, ``_save_rng_state()``: ``rng_state.pth`` or one
   ``rng_state_<i>.pth`` per process;
4. **``trainer_state.json``** (main process only, ``self.state.save_to_json``): the
   commit point, with ``global_step``.

``get_last_checkpoint()`` takes the highest ``checkpoint-N`` without looking inside, so
``resume_from_checkpoint=True`` can pick a half-written one. There is no barrier
before ``trainer_state.json``: other ranks' ``rng_state_<i>.pth`` may still be in
flight, so they are checked too. Complete means: ``trainer_state.json`` parses and its
``global_step`` is the directory's number, no file is empty, every safetensors file is
exactly as long as its header says (``8 + header + data``, what the safetensors
loader requires), every shard the index names is there, every ``torch.save`` file is a
whole archive, and the ``rng_state_<i>.pth`` files run from 0 without a gap.

transformers v4.36-v4.38 (PR #27820, reverted by PR #29370) saved into
``tmp-checkpoint-<step>/`` and renamed it; such a staging directory is never valid.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from hpresil.ckpt import dcp, deepspeed, torchzip
from hpresil.ckpt._files import Listing, first_empty, listdir
from hpresil.ckpt.model import Checkpoint, Format, accepted, rejected

NAME = re.compile(r"checkpoint-(\d+)")
STAGING = re.compile(r"tmp-checkpoint-(\d+)")
STATE = "trainer_state.json"
_TORCH_SUFFIXES = (".pt", ".pth", ".bin")
_RNG = re.compile(r"rng_state_(\d+)\.pth")
_HEADER_LIMIT = 100_000_000  # the safetensors crate refuses larger headers


def judge(path: Path, step: int | None) -> Checkpoint:
    listing = listdir(path)
    if STATE not in listing:
        why = f"no {STATE} (the Trainer writes it last: save interrupted)"
        return rejected(path, step, Format.HF, why)
    state_step, reason = _state_step(path / STATE)
    if reason is None and step is not None and state_step != step:
        reason = f"{STATE} says global_step {state_step}, the directory is {path.name}"
    reason = reason or _check_files(path, listing)
    if reason is not None:
        return rejected(path, step, Format.HF, reason)
    return accepted(path, state_step, Format.HF, path / STATE)


def judge_staging(path: Path, step: int | None) -> Checkpoint:
    reason = "staging directory of an interrupted save (renamed to checkpoint-N when done)"
    return rejected(path, step, Format.HF, reason)


def _state_step(path: Path) -> tuple[int | None, str | None]:
    try:
        with open(path, "rb") as fh:
            state = json.loads(fh.read())
    except ValueError:
        return None, f"{STATE} is not valid JSON (cut short?)"
    step = state.get("global_step") if isinstance(state, dict) else None
    if not isinstance(step, int) or isinstance(step, bool):
        return None, f"{STATE} has no integer global_step"
    return step, None


def _check_files(path: Path, listing: Listing) -> str | None:
    files = [n for n, e in listing.items() if e.is_file()]
    empty = first_empty(listing, files)
    if empty is not None:
        return f"{empty} is a zero-byte file"
    for name in sorted(files):
        if name.endswith(".safetensors"):
            reason = safetensors_check(path / name)
        elif name.endswith(_TORCH_SUFFIXES):
            reason = torchzip.check(path / name)
        else:
            continue
        if reason is not None:
            return reason
    return _index_shards(path, listing) or _rng_states(files) or _nested(path, listing)


def safetensors_check(path: Path) -> str | None:
    """None when the file is exactly as long as its header says."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return f"{path.name} is shorter than a safetensors header"
        n = int.from_bytes(head, "little")
        if n > _HEADER_LIMIT:
            return f"{path.name} declares a {n}-byte header (not safetensors)"
        raw = fh.read(n)
        size = os.fstat(fh.fileno()).st_size
    if len(raw) < n:
        return f"{path.name} is cut short inside its header"
    end = _data_end(raw)
    if end is None:
        return f"{path.name} has an unreadable safetensors header"
    if size != 8 + n + end:
        return f"{path.name} is {size} bytes, its header describes {8 + n + end} (cut short)"
    return None


def _data_end(raw: bytes) -> int | None:
    try:
        header = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(header, dict):
        return None
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and isinstance(offsets[1], int)):
            return None
        end = max(end, offsets[1])
    return end


def _index_shards(path: Path, listing: Listing) -> str | None:
    """Every shard a ``*.index.json`` weight map names is present."""
    for name in sorted(n for n in listing if n.endswith(".index.json")):
        try:
            with open(path / name, "rb") as fh:
                index = json.loads(fh.read())
            shards = set(index["weight_map"].values())
        except (ValueError, KeyError, TypeError, AttributeError):
            return f"{name} is not a readable weight index"
        missing = sorted(s for s in shards if s not in listing)
        if missing:
            return f"{missing[0]}, named in {name}, is missing"
    return None


def _rng_states(files: list[str]) -> str | None:
    ranks = {int(m.group(1)) for n in files if (m := _RNG.fullmatch(n))}
    if ranks and ranks != set(range(max(ranks) + 1)):
        gap = min(set(range(max(ranks) + 1)) - ranks)
        return f"rng_state_{gap}.pth is missing (process {gap} did not finish its save)"
    return None


def _nested(path: Path, listing: Listing) -> str | None:
    """DeepSpeed's tag under ``latest``, and DCP directories saved by FSDP."""
    if deepspeed.LATEST in listing:
        reason = deepspeed.check_save_dir(path, listing)
        if reason is not None:
            return reason
    for name in sorted(n for n, e in listing.items() if e.is_dir()):
        if deepspeed.TAG.fullmatch(name):
            continue  # judged through latest above; older tags are not this checkpoint's
        sub = listdir(path / name)
        if dcp.looks_like(sub):
            reason = dcp.check(sub)
            if reason is not None:
                return f"{name}/: {reason}"
    return None
