"""The hpresil manifest: a completion record for checkpoints no framework vouches for.

A job (or hpresil's job helper) calls :func:`write` after its own save returned. The
manifest lists every file with its size (and, on request, its sha256) and is written
**last** and atomically (temporary file in the same directory, fsync, ``os.replace``,
fsync of the directory), so its presence is the commit point: a save that died earlier
has no manifest, and a file that changed or shrank since no longer matches it.

Where it lives: inside a checkpoint directory as ``hpresil-manifest.json``; beside a
single-file checkpoint as ``<file>.hpresil-manifest.json``.

Content (``format_version`` 1)::

    {"format_version": 1, "step": 1200, "written_at": 1767225600.0,
     "files": {"model.bin": {"size": 4096, "sha256": "..."}, ...},
     "lease": {"job_id": 42, "generation": 3, "token": "..."} | null}

``lease`` is the writer's job lease (see :mod:`hpresil.ckpt.lease`): it lets a later
reader reject a checkpoint that a fenced, stale instance wrote after a newer one had
taken over.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpresil.errors import HpresilError

MANIFEST_NAME = "hpresil-manifest.json"
FORMAT_VERSION = 1
_CHUNK = 1 << 20


class ManifestError(HpresilError):
    """A manifest cannot be written (its checkpoint is missing) or read."""


@dataclass(frozen=True)
class Manifest:
    step: int
    written_at: float
    files: dict[str, dict[str, Any]]  # relpath -> {"size": int, "sha256"?: str}
    lease: dict[str, Any] | None


def location(path: Path) -> Path:
    """Where the manifest of the checkpoint at ``path`` (a directory or a file) lives."""
    if path.is_dir():
        return path / MANIFEST_NAME
    return path.with_name(f"{path.name}.{MANIFEST_NAME}")


def write(
    path: Path, step: int, *, hashes: bool = False, lease: dict[str, object] | None = None
) -> Path:
    """Record the files of the checkpoint at ``path`` and commit it; returns the
    manifest's path. Call it only after the checkpoint's own save has returned."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"cannot write a manifest for {path}: no such file or directory")
    base = path if path.is_dir() else path.parent
    names = _files(path) if path.is_dir() else [path.name]
    files = {name: _describe(base / name, hashes) for name in names}
    record = {
        "format_version": FORMAT_VERSION,
        "step": step,
        "written_at": time.time(),
        "files": files,
        "lease": lease,
    }
    from hpresil.fsutil import atomic_write  # tempfile costs ~9 ms: only writers pay it

    target = location(path)
    atomic_write(target, json.dumps(record, indent=1, sort_keys=True) + "\n")
    _fsync_dir(target.parent)
    return target


def _files(root: Path) -> list[str]:
    """Every file below ``root`` as a relative POSIX path, without manifests (and the
    temporary files of one that was being written)."""
    out: list[str] = []
    for folder, _dirs, names in os.walk(root):
        rel = Path(folder).relative_to(root)
        for name in names:
            if MANIFEST_NAME in name:
                continue
            out.append((rel / name).as_posix())
    return sorted(out)


def _describe(path: Path, hashes: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"size": path.stat().st_size}
    if hashes:
        entry["sha256"] = _sha256(path)
    return entry


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(manifest: Path) -> Manifest:
    """Parse the manifest file at ``manifest``; :class:`ManifestError` says what is wrong."""
    try:
        with open(manifest, "rb") as fh:
            data = json.loads(fh.read())
    except FileNotFoundError:
        raise ManifestError(f"no {manifest.name}") from None
    except OSError as exc:
        raise ManifestError(f"{manifest.name}: {exc.strerror}") from None
    except ValueError:
        raise ManifestError(f"{manifest.name} is not valid JSON (cut short?)") from None
    return _parse(manifest.name, data)


def _parse(name: str, data: Any) -> Manifest:
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise ManifestError(f"{name}: not an hpresil manifest of format_version 1")
    step, written_at, files, lease = (data.get(k) for k in ("step", "written_at", "files", "lease"))
    if not isinstance(step, int) or isinstance(step, bool):
        raise ManifestError(f"{name}: step is not an integer")
    if not isinstance(written_at, int | float):
        raise ManifestError(f"{name}: written_at is not a number")
    if not isinstance(files, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("size"), int) for v in files.values()
    ):
        raise ManifestError(f"{name}: files is not a map of path to {{size, sha256}}")
    if lease is not None and not isinstance(lease, dict):
        raise ManifestError(f"{name}: lease is neither an object nor null")
    return Manifest(step, float(written_at), files, lease)


def check(
    manifest: Path, base: Path, *, hashes: bool = False
) -> tuple[Manifest | None, str | None]:
    """The manifest at ``manifest`` and None when every file it lists (relative to
    ``base``) is there with its recorded size (and sha256, with ``hashes``); else
    ``(manifest or None, reason)``."""
    try:
        record = read(manifest)
    except ManifestError as exc:
        return None, str(exc)
    for rel, entry in sorted(record.files.items()):
        reason = _check_file(base, rel, entry, hashes)
        if reason is not None:
            return record, reason
    return record, None


def _check_file(base: Path, rel: str, entry: dict[str, Any], hashes: bool) -> str | None:
    if rel.startswith("/") or ".." in Path(rel).parts:
        return f"manifest lists {rel!r}, outside the checkpoint"
    try:
        size = os.stat(base / rel).st_size
    except FileNotFoundError:
        return f"{rel} is listed in the manifest but missing"
    if size != entry["size"]:
        return f"{rel} is {size} bytes, the manifest recorded {entry['size']}"
    recorded = entry.get("sha256")
    if hashes and isinstance(recorded, str) and _sha256(base / rel) != recorded:
        return f"{rel} does not match its sha256 in the manifest"
    return None


def verify(path: Path, *, hashes: bool = False) -> str | None:
    """None when the checkpoint at ``path`` matches its manifest, else a one-line reason
    (no manifest, unreadable manifest, a file missing, resized or, with ``hashes``,
    changed)."""
    path = Path(path)
    base = path if path.is_dir() else path.parent
    try:
        _, reason = check(location(path), base, hashes=hashes)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    return reason
