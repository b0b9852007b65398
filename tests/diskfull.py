"""``scripts/smalldisk.py`` for tests: a fillable tmpfs, the test skipped with the
reason where no tmpfs can be mounted (not root)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from smalldisk import CannotMount, SmallDisk
from smalldisk import moved_to_a_small_disk as _moved
from smalldisk import small_disk as _small

__all__ = ["SmallDisk", "moved_to_a_small_disk", "small_disk"]


@contextmanager
def small_disk(path: Path, size_kib: int = 1024) -> Iterator[SmallDisk]:
    try:
        with _small(path, size_kib) as disk:
            yield disk
    except CannotMount as exc:
        pytest.skip(str(exc))


@contextmanager
def moved_to_a_small_disk(
    folder: Path, stop: Callable[[], None], start: Callable[[], None]
) -> Iterator[SmallDisk]:
    try:
        with _moved(folder, stop, start) as disk:
            yield disk
    except CannotMount as exc:
        pytest.skip(str(exc))
