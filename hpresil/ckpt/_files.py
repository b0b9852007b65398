"""Small filesystem helpers shared by the format modules: list a directory once, find
empty files, read small text files. Errors are left to the caller's one boundary
(:func:`hpresil.ckpt.scan.judge` turns an ``OSError`` into a rejection reason)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

Listing = dict[str, "os.DirEntry[str]"]

SMALL = 1 << 20  # JSON and pointer files are far smaller; a larger one is not ours


def listdir(path: Path) -> Listing:
    """Every entry of ``path`` by name (one ``scandir``, no ``stat``)."""
    with os.scandir(path) as it:
        return {entry.name: entry for entry in it}


def size(entry: os.DirEntry[str]) -> int:
    return entry.stat().st_size


def first_empty(listing: Listing, names: Iterable[str]) -> str | None:
    """The first of ``names`` that is a zero-byte file (a write that never started
    filling it), else None."""
    for name in sorted(names):
        entry = listing[name]
        if entry.is_file() and size(entry) == 0:
            return name
    return None


def read_small(path: Path) -> str:
    """The text of a small file (a pointer, a JSON state); at most 1 MiB is read."""
    with open(path, "rb") as fh:
        return fh.read(SMALL).decode("utf-8", errors="replace")


def newest_mtime(path: Path, listing: Listing) -> Path:
    """The file of ``listing`` modified last (the commit time of a checkpoint whose
    pointer has since moved on); ``path`` itself when it holds no file."""
    best, best_t = path, -1.0
    for entry in listing.values():
        if entry.is_file():
            t = entry.stat().st_mtime
            if t > best_t:
                best, best_t = Path(entry.path), t
    return best
