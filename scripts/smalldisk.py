"""A small disk that can be filled, for fault injection: a tmpfs mounted on a folder
(root only). Writes on it fail with ENOSPC exactly as on a full spool or database
disk. Used by the disk-full tests and ``scripts/bench/faults``. Stdlib only."""

from __future__ import annotations

import errno
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

FILLER = ".filler"
SPARE_KIB = 4096


class CannotMount(RuntimeError):
    """No tmpfs can be mounted here (not root, or not allowed in this container)."""


class SmallDisk:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self) -> None:
        """Write until the disk says ENOSPC, then take the last partial blocks too, so
        that even a one-byte file fails."""
        with (self.path / FILLER).open("ab", buffering=0) as fh, suppress(_NoSpace):
            while True:
                _write(fh.write, b"\0" * 4096)
        for n in range(64):
            try:
                _write((self.path / f"{FILLER}.{n}").write_bytes, b"\0")
            except _NoSpace:
                return

    def free(self) -> None:
        for filler in self.path.glob(f"{FILLER}*"):
            filler.unlink()


class _NoSpace(Exception):
    pass


def _write(write: Callable[[bytes], object], data: bytes) -> None:
    try:
        write(data)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise _NoSpace from None


@contextmanager
def small_disk(path: Path, size_kib: int = 1024) -> Iterator[SmallDisk]:
    """Mount a ``size_kib`` tmpfs on ``path`` (created if missing) for the block."""
    path.mkdir(parents=True, exist_ok=True)
    argv = ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(path)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise CannotMount(f"cannot mount a tmpfs: {exc}") from None
    if done.returncode != 0:
        raise CannotMount(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@contextmanager
def moved_to_a_small_disk(
    folder: Path, stop: Callable[[], None], start: Callable[[], None]
) -> Iterator[SmallDisk]:
    """``folder``'s files on a tmpfs with ``SPARE_KIB`` to spare; ``stop`` and
    ``start`` its user around the moves there and back."""
    stop()
    keep = Path(tempfile.mkdtemp(prefix="hpresil-disk-"))
    try:
        shutil.copytree(folder, keep, dirs_exist_ok=True)
        used_kib = sum(p.stat().st_size for p in keep.rglob("*") if p.is_file()) // 1024
        with small_disk(folder, size_kib=used_kib + SPARE_KIB) as disk:
            shutil.copytree(keep, folder, dirs_exist_ok=True)
            start()
            try:
                yield disk
            finally:
                disk.free()
                stop()
                shutil.rmtree(keep)
                shutil.copytree(folder, keep)
        shutil.rmtree(folder)
        shutil.copytree(keep, folder)
    finally:
        shutil.rmtree(keep, ignore_errors=True)
        start()
