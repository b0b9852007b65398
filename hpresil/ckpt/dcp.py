"""``torch.distributed.checkpoint`` (DCP) directories.

Source: pytorch/pytorch ``torch/distributed/checkpoint/filesystem.py``
(``_FileSystemWriter``). Write order:

1. every rank writes its shards ``__<rank>_<n>.distcp`` (prefix from
   ``prepare_global_plan``, ``DEFAULT_SUFFIX = ".distcp"``), fsync'ed when
   ``sync_files``;
2. after all ranks report their write results, the coordinator's ``finish()`` pickles
   the ``Metadata`` to ``.metadata.tmp``, fsyncs it, removes an old ``.metadata`` and
   renames the tmp file to ``.metadata``: **the commit point**.

So a save killed earlier leaves shards (possibly short) and maybe ``.metadata.tmp``
but no ``.metadata``. ``.metadata`` alone is not enough, though: a new save into the
same directory (``overwrite=True``) rewrites the shards while the old ``.metadata``
is still in place. The reader locates every item through ``storage_data``
(``_StorageInfo``: ``relative_path``, ``offset``, ``length``), so this module reads
those references from ``.metadata`` (without unpickling, :mod:`hpresil.ckpt._pickle`)
and requires every named file to exist and be at least ``offset + length`` long.

A zero-byte shard is not by itself a sign of a dead writer here: DCP de-duplicates
replicated tensors, so a rank left with nothing to write still creates its (empty)
file; only files that ``.metadata`` references must hold data.
"""

from __future__ import annotations

from hpresil.ckpt import _pickle
from hpresil.ckpt._files import Listing

METADATA = ".metadata"
SUFFIX = ".distcp"
METADATA_LIMIT = 64 << 20  # larger .metadata files get the shallow check only


def looks_like(listing: Listing) -> bool:
    """Whether a directory holds (or was starting to hold) a DCP checkpoint."""
    return (
        METADATA in listing
        or f"{METADATA}.tmp" in listing
        or any(n.endswith(SUFFIX) for n in listing)
    )


def check(listing: Listing) -> str | None:
    """None when the directory listed as ``listing`` is a committed, whole DCP
    checkpoint, else why not."""
    if METADATA not in listing:
        if f"{METADATA}.tmp" in listing:
            return f"{METADATA}.tmp was never renamed to {METADATA} (save interrupted)"
        return f"no {METADATA} (the coordinator writes it after every shard; save interrupted)"
    meta = listing[METADATA]
    if meta.stat().st_size == 0:
        return f"{METADATA} is empty"
    if not any(n.endswith(SUFFIX) for n in listing):
        return f"no {SUFFIX} shard beside {METADATA}"
    if meta.stat().st_size > METADATA_LIMIT:
        return None  # reading it would cost seconds; the commit marker has to do
    with open(meta.path, "rb") as fh:
        need, walk = _pickle.storage_refs(fh, limit=METADATA_LIMIT)
    if not walk.complete:
        return f"{METADATA} is cut short (unreadable pickle)"
    return _short_file(listing, need)


def _short_file(listing: Listing, need: dict[str, int]) -> str | None:
    for name, least in sorted(need.items()):
        entry = listing.get(name)  # relative_path is a plain file name in the directory
        if entry is None:
            return f"{name}, named in {METADATA}, is missing"
        have = entry.stat().st_size
        if have < least:
            return f"{name} is {have} bytes but {METADATA} needs {least} (shard cut short)"
    return None
