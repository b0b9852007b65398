"""Read a few scalar fields out of a pickle without unpickling it.

Checkpoints record their step and world size inside pickles (``torch.save`` puts
``global_step``, ``dp_world_size`` or ``args`` in ``data.pkl``; torch DCP pickles its
``Metadata`` to ``.metadata``). Unpickling would need torch and would run code from
the file; instead this walks the opcode stream with :func:`pickletools.genops` (which
executes nothing) and yields the strings and integers it pushes, resolving memo
references, so a caller can find "key string, then its value". Every other opcode
yields ``None`` (a structure boundary).

The walk is bounded: it stops after ``limit`` bytes and reports whether the stream
ended with ``STOP`` (a pickle cut short by a dying writer never does).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import IO

Atom = str | int | None

_STRINGS = frozenset(
    {"UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "STRING", "BINSTRING"}
    | {"SHORT_BINSTRING"}
)
_INTS = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_SILENT = frozenset({"FRAME", "PROTO"})  # push nothing, leave the stack top alone


@dataclass
class Walk:
    """The outcome of :func:`atoms`: ``complete`` once ``STOP`` was read."""

    complete: bool = False
    truncated: bool = False  # the stream ended (or broke) before STOP
    over_limit: bool = False  # stopped reading at ``limit`` bytes
    memo: dict[int, Atom] = field(default_factory=dict)


def atoms(stream: IO[bytes], walk: Walk, *, limit: int) -> Iterator[Atom]:
    """The strings and integers the pickle in ``stream`` pushes, in order; ``None``
    for anything else it pushes or builds."""
    import pickletools  # ~2 ms: only when a checkpoint is being judged

    last: Atom = None
    try:
        for op, arg, pos in pickletools.genops(stream):
            name = op.name
            if pos is not None and pos > limit:
                walk.over_limit = True
                return
            if name in _STRINGS or (name in _INTS and not isinstance(arg, bool)):
                last = arg if isinstance(arg, str | int) else None
                yield last
            elif name in _PUTS:
                if isinstance(arg, int):
                    walk.memo[arg] = last
            elif name == "MEMOIZE":
                walk.memo[len(walk.memo)] = last
            elif name in _GETS:
                last = walk.memo.get(arg) if isinstance(arg, int) else None
                yield last
            elif name == "STOP":
                walk.complete = True
                return
            elif name not in _SILENT:
                last = None
                yield None
    except ValueError:  # genops: unknown opcode or a short read: the pickle is cut off
        pass
    walk.truncated = True


def first_ints(
    stream: IO[bytes], keys: Collection[str], *, limit: int
) -> tuple[dict[str, int], Walk]:
    """For each of ``keys``, the integer that follows its first occurrence as a string
    (a dict key or an attribute name); stops once all are found."""
    found: dict[str, int] = {}
    walk = Walk()
    prev: Atom = None
    for atom in atoms(stream, walk, limit=limit):
        if isinstance(prev, str) and prev in keys and prev not in found:
            if isinstance(atom, int):
                found[prev] = atom
            if len(found) == len(keys):
                break
        prev = atom
    return found, walk


def storage_refs(stream: IO[bytes], *, limit: int) -> tuple[dict[str, int], Walk]:
    """torch DCP ``.metadata``: for every file a ``_StorageInfo`` names
    (``relative_path``, ``offset``, ``length``, pickled as its ``__dict__`` in that
    order), the least size that file must have (the largest ``offset + length``)."""
    need: dict[str, int] = {}
    walk = Walk()
    path: str | None = None
    offset: int | None = None
    prev: Atom = None
    for atom in atoms(stream, walk, limit=limit):
        if prev == "relative_path" and isinstance(atom, str):
            path, offset = atom, None
        elif prev == "offset" and isinstance(atom, int):
            offset = atom
        elif prev == "length" and isinstance(atom, int) and path is not None:
            end = (offset or 0) + atom
            need[path] = max(need.get(path, 0), end)
            path = None
        prev = atom
    return need, walk
