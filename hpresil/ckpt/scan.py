"""Find the checkpoints under a directory, order them newest first, judge them lazily.

One ``os.scandir`` of the root; each name is classified by its pattern alone
(``checkpoint-N``, ``global_stepN``, ``iter_NNNNNNN``, ``*.ckpt``, ``step-N``, NeMo's
``...-step=N...``, a file with ``<file>.hpresil-manifest.json`` beside it), its step
parsed from the name, and the candidates sorted by step. Nothing is opened or stat'ed
to sort them (except Lightning files whose name carries no step, and a pointer file
or two), so :func:`latest` costs one directory listing plus the judgement of the
newest few, whatever the number of checkpoints. :func:`scan` judges them all.

Rules across formats (the reference: ``shared/reference/checkpoints.md``, "Rules hpresil
should implement"):

* never trust a pointer alone (``latest``, the Megatron tracker, ``last.ckpt``,
  "highest ``checkpoint-N``"): the checkpoint it names is judged like any other, and
  when it fails the next older one that passes is chosen;
* a checkpoint with a NeMo ``<name>-unfinished`` marker beside it is not complete;
* staging names (``tmp-checkpoint-N``, ``.metadata.tmp``, hidden temporary files) are
  never chosen; ``.hpresil/`` and other hidden entries are not candidates;
* a checkpoint that is complete by its own format's rules and also carries an hpresil
  manifest must match it, and is refused when the manifest shows a fenced writer
  (:func:`hpresil.ckpt.lease.fenced`);
* an entry that cannot be read (permissions, a broken symlink) is a rejection with a
  reason, never an exception. Only a root that is missing, not a directory or not
  listable raises (:class:`~hpresil.ckpt.model.CheckpointRootError`).

The root may itself be one checkpoint (a DCP directory, ``checkpoint-N/``,
``iter_NNNNNNN/``, ``global_stepN/``, ``step-N/``, a sharded ``*.ckpt/``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

from hpresil.ckpt import dcp, deepspeed, hf, lightning, manifest, megatron, nemo, plain
from hpresil.ckpt._files import Listing, listdir
from hpresil.ckpt.lease import Lease, current, fenced
from hpresil.ckpt.model import Checkpoint, CheckpointRootError, Format, rejected

Judge = Callable[[Path, int | None], Checkpoint]
_SIBLING = "." + manifest.MANIFEST_NAME


class Candidate(NamedTuple):
    """A name found under the root, not judged yet. A tuple: 10,000 of them are made
    for every ``latest`` call, and a frozen dataclass costs nearly three times as much
    to build (0.9 against 0.34 µs)."""

    name: str  # relative to the root; "" for the root itself
    step: int | None
    format: Format  # what a rejection for an unreadable entry is filed under
    judge: Judge
    tiebreak: int = 0  # among equal steps, higher is newer


def _newest_first(c: Candidate) -> tuple[bool, int, int, str]:
    return (c.step is not None, c.step or 0, c.tiebreak, c.name)


@dataclass(frozen=True)
class _Root:
    path: Path
    candidates: list[Candidate]
    markers: frozenset[str]  # NeMo "-unfinished" markers beside the candidates
    lease: Lease | None
    verify_hashes: bool


def scan(root: Path | str, *, verify_hashes: bool = False) -> list[Checkpoint]:
    """Every candidate under ``root``, newest first, each judged."""
    ctx = _open(Path(root), verify_hashes)
    return [_judge(ctx, c) for c in ctx.candidates]


def latest(root: Path | str, *, verify_hashes: bool = False) -> Checkpoint | None:
    """The newest complete checkpoint under ``root`` (None when there is none). Judges
    candidates newest first and stops at the first complete one."""
    ctx = _open(Path(root), verify_hashes)
    return next((ck for ck in _judged(ctx) if ck.complete), None)


def _judged(ctx: _Root) -> Iterator[Checkpoint]:
    for c in ctx.candidates:
        yield _judge(ctx, c)


def _open(root: Path, verify_hashes: bool) -> _Root:
    try:
        listing = listdir(root)
    except FileNotFoundError:
        raise CheckpointRootError(f"{root}: no such directory") from None
    except NotADirectoryError:
        raise CheckpointRootError(f"{root}: not a directory") from None
    except OSError as exc:
        raise CheckpointRootError(f"{root}: cannot list: {exc.strerror or exc}") from None
    single = _by_name(root)
    candidates = [] if single else _discover(root, listing)
    if not candidates and not single:
        single = _by_content(listing)
    if single:
        markers = _parent_markers(root)
        lease = current(root) or current(root.parent)
        return _Root(root, [single], markers, lease, verify_hashes)
    candidates.sort(key=_newest_first, reverse=True)
    markers = frozenset(n for n in listing if n.endswith(nemo.MARKER_SUFFIX))
    return _Root(root, candidates, markers, current(root), verify_hashes)


def _judge(ctx: _Root, c: Candidate) -> Checkpoint:
    path = ctx.path / c.name if c.name else ctx.path
    if nemo.marker_for(path.name) in ctx.markers:
        return rejected(path, c.step, c.format, nemo.unfinished(path.name))
    try:
        ck = c.judge(path, c.step)
        return _manifest_rules(ctx, ck) if ck.complete else ck
    except OSError as exc:
        return rejected(path, c.step, c.format, _unreadable(path, exc))


def _unreadable(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError) and path.is_symlink() and not path.exists():
        return f"{path.name} is a broken symlink"
    where = Path(exc.filename).name if exc.filename else path.name
    return f"cannot read {where}: {exc.strerror or exc}"


def _manifest_rules(ctx: _Root, ck: Checkpoint) -> Checkpoint:
    """A complete checkpoint that carries an hpresil manifest must match it and must not
    come from a fenced writer."""
    where = manifest.location(ck.path)
    if not where.exists():
        return ck
    base = ck.path if ck.path.is_dir() else ck.path.parent
    record, reason = manifest.check(where, base, hashes=ctx.verify_hashes)
    if record is not None and reason is None:
        if ck.step is not None and record.step != ck.step:
            reason = f"manifest records step {record.step}, the checkpoint is step {ck.step}"
        else:
            reason = fenced(ctx.lease, record.lease, record.written_at)
    if reason is not None:
        return rejected(ck.path, ck.step, ck.format, f"hpresil manifest: {reason}")
    if ck.step is None and record is not None:
        return dataclasses.replace(ck, step=record.step)
    return ck


# --- discovery --------------------------------------------------------------------


def _discover(root: Path, listing: Listing) -> list[Candidate]:
    out: list[Candidate] = []
    tags: dict[str, int] = {}
    iters: dict[str, int] = {}
    stepped: dict[str, int] = {}  # step-N: an hpresil or DCP save, or a DeepSpeed tag
    siblings: list[str] = []
    for name, entry in listing.items():
        if name.startswith("."):
            continue
        if name.startswith("checkpoint-"):
            if m := hf.NAME.fullmatch(name):
                out.append(Candidate(name, int(m.group(1)), Format.HF, hf.judge))
        elif name.startswith("tmp-checkpoint-"):
            if m := hf.STAGING.fullmatch(name):
                out.append(Candidate(name, int(m.group(1)), Format.HF, hf.judge_staging))
        elif name.startswith("global_step"):
            if m := deepspeed.TAG.fullmatch(name):
                tags[name] = int(m.group(1))
        elif name.startswith("iter_"):
            if m := megatron.ITER.fullmatch(name):
                iters[name] = int(m.group(1))
        elif name.endswith(lightning.SUFFIX):
            out.extend(_lightning(root, name, entry, listing))
        elif name.endswith(_SIBLING):
            siblings.append(name)
        elif m := plain.NAME.fullmatch(name):
            stepped[name] = int(m.group(1))
        elif "step=" in name and not name.endswith(nemo.MARKER_SUFFIX) and entry.is_dir():
            out.append(_nemo(name))
    if tags or deepspeed.LATEST in listing:
        pointer = deepspeed.read_pointer(root, listing)
        if pointer.tag in stepped and deepspeed.is_tag(root / pointer.tag):
            tags.update(stepped)  # save_checkpoint(tag=f"step-{n}"): the tags are named so
            stepped.clear()
        out.extend(_deepspeed(root, listing, tags, pointer, taken=set(stepped)))
    out.extend(Candidate(n, step, Format.MANIFEST, plain.judge) for n, step in stepped.items())
    if iters or megatron.TRACKER in listing:
        out.extend(_megatron(root, listing, iters))
    known = {c.name for c in out}
    out.extend(_manifest_siblings(root, listing, siblings, known))
    return out


def _lightning(root: Path, name: str, entry: os.DirEntry[str], listing: Listing) -> list[Candidate]:
    step = lightning.step_in_name(name)
    tiebreak = lightning.version(name)
    if name.startswith("last"):
        tiebreak = -1  # same state as the top-k file of its step, saved after it
        if entry.is_symlink():
            target = root / os.readlink(root / name)
            if target.parent == root and target.name in listing:
                return []  # save_last="link": the top-k file it points to is a candidate
            step = lightning.step_in_name(target.name)
    if step is None and entry.is_file():
        try:
            step = lightning.step_inside(root / name)
        except OSError:
            step = None
    return [Candidate(name, step, Format.LIGHTNING, lightning.judge, tiebreak)]


def _nemo(name: str) -> Candidate:
    tiebreak = -1 if name.endswith("-last") else 0
    return Candidate(name, lightning.step_in_name(name), Format.NEMO, nemo.judge, tiebreak)


def _deepspeed(
    root: Path, listing: Listing, tags: dict[str, int], pointer: deepspeed.Pointer, taken: set[str]
) -> list[Candidate]:
    judge = partial(deepspeed.judge_tag, pointer=pointer)
    out = [Candidate(name, step, Format.DEEPSPEED, judge) for name, step in tags.items()]
    tag = pointer.tag
    if tag is None or tag in tags or tag in taken:
        return out
    if tag not in listing:
        if tags or pointer.step is not None:
            out.append(Candidate(tag, pointer.step, Format.DEEPSPEED, deepspeed.judge_missing))
    elif deepspeed.is_tag(root / tag):  # a tag of another name ("best", "checkpoint")
        step = pointer.step if pointer.step is not None else deepspeed.recorded_step(root / tag)
        out.append(Candidate(tag, step, Format.DEEPSPEED, judge))
    return out


def _megatron(root: Path, listing: Listing, iters: dict[str, int]) -> list[Candidate]:
    tracker = megatron.read_tracker(root, listing)
    judge = partial(megatron.judge_iter, tracker=tracker)
    out = [Candidate(name, step, Format.MEGATRON, judge) for name, step in iters.items()]
    target = tracker.target
    if target is not None and target not in listing:
        missing = Candidate(target, tracker.iteration, Format.MEGATRON, megatron.judge_missing)
        out.append(missing)
    elif tracker.release:
        out.append(Candidate(megatron.RELEASE, None, Format.MEGATRON, judge, tiebreak=1))
    return out


def _manifest_siblings(
    root: Path, listing: Listing, siblings: list[str], known: set[str]
) -> list[Candidate]:
    """Files with ``<file>.hpresil-manifest.json`` beside them that no other rule found."""
    out: list[Candidate] = []
    for sibling in siblings:
        name = sibling.removesuffix(_SIBLING)
        if name in known or name.endswith(lightning.SUFFIX):
            continue  # judged by its own format; the manifest is checked on top
        step = _step_of_file(name, root / sibling)
        judge = plain.judge if name in listing else plain.judge_orphan_manifest
        out.append(Candidate(name, step, Format.MANIFEST, judge))
    return out


def _step_of_file(name: str, manifest_path: Path) -> int | None:
    m = plain.NAME.search(name)
    step = int(m.group(1)) if m else lightning.step_in_name(name)
    if step is not None:
        return step
    try:
        return manifest.read(manifest_path).step
    except manifest.ManifestError:
        return None


# --- the root as one checkpoint -----------------------------------------------------


def _by_name(root: Path) -> Candidate | None:
    """The root is a checkpoint if its own name says so."""
    name = root.name
    if m := hf.NAME.fullmatch(name):
        return Candidate("", int(m.group(1)), Format.HF, hf.judge)
    if m := deepspeed.TAG.fullmatch(name):
        return Candidate("", int(m.group(1)), Format.DEEPSPEED, _tag_alone)
    if m := megatron.ITER.fullmatch(name):
        return Candidate("", int(m.group(1)), Format.MEGATRON, _iter_alone)
    if name.endswith(lightning.SUFFIX):
        return Candidate("", lightning.step_in_name(name), Format.LIGHTNING, lightning.judge)
    if m := plain.NAME.fullmatch(name):
        return Candidate("", int(m.group(1)), Format.MANIFEST, plain.judge)
    if "step=" in name and nemo.looks_like(root):
        return Candidate("", lightning.step_in_name(name), Format.NEMO, nemo.judge)
    return None


def _by_content(listing: Listing) -> Candidate | None:
    """The root is a checkpoint if it holds a commit marker and nothing else was found."""
    if hf.STATE in listing:
        return Candidate("", None, Format.HF, hf.judge)
    if nemo.WEIGHTS in listing and listing[nemo.WEIGHTS].is_dir():
        return Candidate("", None, Format.NEMO, nemo.judge)
    if dcp.looks_like(listing) or manifest.MANIFEST_NAME in listing:
        return Candidate("", None, Format.MANIFEST, plain.judge)
    return None


def _tag_alone(path: Path, step: int | None) -> Checkpoint:
    return deepspeed.judge_tag(path, step, None)


def _iter_alone(path: Path, step: int | None) -> Checkpoint:
    return megatron.judge_iter(path, step, None)


def _parent_markers(root: Path) -> frozenset[str]:
    marker = nemo.marker_for(root.name)
    return frozenset({marker}) if (root.parent / marker).exists() else frozenset()
