"""PyTorch Lightning ``ModelCheckpoint`` checkpoints (``*.ckpt``).

Source: Lightning-AI/pytorch-lightning ``src/lightning/pytorch/callbacks/model_checkpoint.py``
(names: ``"{epoch}-{step}"`` rendered as ``epoch=3-step=1200.ckpt``, ``-v1`` on a
collision, ``last.ckpt`` written after the top-k file of the same step, or a symlink
to it with ``save_last="link"``), ``src/lightning/fabric/utilities/cloud_io.py``
(``_atomic_save``) and ``trainer/connectors/signal_connector.py`` (SLURM requeue saves
``hpc_ckpt_<N>.ckpt``).

Write order, single file: ``torch.save`` of the whole checkpoint dict. Since 2.4.0
(PR #20011) it goes to a temporary file and is moved into place, so the final name
appears complete; before 2.4.0 (and when ``$TMPDIR`` is on another filesystem, where
the move is copy-then-delete) a killed save leaves a truncated file at the final name,
whose zip central directory (written last) is missing. A file is complete when it is a
whole ``torch.save`` archive (:mod:`hpresil.ckpt.torchzip`).

The step: Lightning stores ``global_step`` inside the pickled dict; the filename's
``step=N`` is a hint from the default template. Without torch we cannot load the
pickle, so candidates are ordered by the ``step=N`` of their names (no file is opened
to sort 10,000 of them) and the step reported for the one judged is ``global_step``
read from ``data.pkl`` by walking its opcodes (:mod:`hpresil.ckpt._pickle`), falling
back to the name. Files whose name carries no step (``last.ckpt``, ``hpc_ckpt_3.ckpt``,
custom templates) are opened once to read it.

Sharded strategies save a *directory* named like the file:

* FSDP ``state_dict_type="sharded"`` (``strategies/fsdp.py``): every rank writes DCP
  shards and ``.metadata`` (:mod:`hpresil.ckpt.dcp`), then rank 0 writes ``meta.pt``
  (``_METADATA_FILENAME``) last;
* DeepSpeed (``strategies/deepspeed.py``): ``save_checkpoint(path, tag="checkpoint")``,
  so the directory holds ``checkpoint/`` and the ``latest`` pointer written last
  (:mod:`hpresil.ckpt.deepspeed`).
"""

from __future__ import annotations

import re
from pathlib import Path

from hpresil.ckpt import dcp, deepspeed, torchzip
from hpresil.ckpt._files import listdir
from hpresil.ckpt.model import Checkpoint, Format, accepted, rejected

SUFFIX = ".ckpt"
META = "meta.pt"
_STEP = re.compile(r"(?:^|[-_])step=(\d+)")
_VERSION = re.compile(r"-v(\d+)\.ckpt$")


def step_in_name(name: str) -> int | None:
    m = _STEP.search(name)
    return int(m.group(1)) if m else None


def version(name: str) -> int:
    """Lightning's collision counter (``-v1``): a higher one was saved later."""
    m = _VERSION.search(name)
    return int(m.group(1)) if m else 0


def step_inside(path: Path) -> int | None:
    """``global_step`` from the pickled checkpoint dict (None when unreadable)."""
    return torchzip.ints(path, ("global_step",)).get("global_step")


def judge(path: Path, step: int | None) -> Checkpoint:
    if path.is_dir():
        return _judge_dir(path, step)
    if path.stat().st_size == 0:
        return rejected(path, step, Format.LIGHTNING, f"{path.name} is a zero-byte file")
    reason = torchzip.check(path)
    if reason is not None:
        return rejected(path, step, Format.LIGHTNING, reason)
    inside = step_inside(path)
    return accepted(path, inside if inside is not None else step, Format.LIGHTNING, path)


def _judge_dir(path: Path, step: int | None) -> Checkpoint:
    listing = listdir(path)
    if META in listing:
        reason = torchzip.check(path / META) or dcp.check(listing)
        commit = path / META
    elif deepspeed.LATEST in listing or deepspeed.RECOVERY_SCRIPT in listing:
        reason = deepspeed.check_save_dir(path, listing)
        commit = path / deepspeed.LATEST
    elif dcp.looks_like(listing):
        reason = f"no {META} (Lightning's FSDP strategy writes it after the sharded save)"
    else:
        reason = f"a directory with neither {META} (FSDP) nor latest (DeepSpeed)"
    if reason is not None:
        return rejected(path, step, Format.LIGHTNING, reason)
    return accepted(path, step, Format.LIGHTNING, commit)
