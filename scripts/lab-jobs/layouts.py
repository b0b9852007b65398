#!/usr/bin/env python3
"""Write one checkpoint the way a training framework does, in its write order.

Used by the lab's stand-in training job and by hpresil's checkpoint tests. Standard
library only (the ``hpresil`` format imports :mod:`hpresil.ckpt.manifest`, itself
standard library only). Contents are small but structurally real: ``torch.save``
files are zip archives laid out like ``PyTorchStreamWriter``'s (``<archive>/data.pkl``
pickled with protocol 2, tensors as persistent ids pointing at
``<archive>/data/<key>`` records, ``<archive>/version``), safetensors files have a
header whose offsets match the file size, JSON states carry ``global_step``, DCP
shards are referenced from ``.metadata`` by ``relative_path``/``offset``/``length``.
Without torch the pickles hold plain dicts where torch pickles its own classes
(``argparse.Namespace`` args, DCP's ``_StorageInfo``); the keys and values a reader
looks for are the same.

``write(fmt, root, step, stop_after=k)`` performs only the first ``k`` operations of
the format's order (each file written, each rename, the commit point), as when the
node dies mid-save; ``torn=True`` also leaves operation ``k + 1`` half done (a file cut
short, a rename's source half-written). :func:`plan` lists the operations.

    python3 layouts.py hf /tmp/out 500 [--stop-after 3] [--torn]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

FORMATS = ("lightning", "hf", "deepspeed", "megatron", "megatron-legacy", "dcp", "nemo", "hpresil")


# --- file contents ------------------------------------------------------------------


class Tensor:
    """A stand-in tensor: its bytes go to a storage record, the pickle holds a
    persistent id, as ``torch.save`` does (``('storage', type, key, location, numel)``)."""

    def __init__(self, numel: int, fill: int = 1) -> None:
        self.data = bytes([fill % 256]) * (4 * numel)
        self.numel = numel


class _Pickler(pickle.Pickler):
    def __init__(self, fh: io.BytesIO, storages: list[bytes]) -> None:
        super().__init__(fh, protocol=2)  # torch.serialization.DEFAULT_PROTOCOL
        self.storages = storages

    def persistent_id(self, obj: object) -> object:
        if isinstance(obj, Tensor):
            self.storages.append(obj.data)
            key = str(len(self.storages) - 1)
            return ("storage", "torch.FloatStorage", key, "cpu", obj.numel)
        return None


def torch_save(obj: object, archive: str = "archive") -> bytes:
    """The bytes ``torch.save(obj, fileobj)`` writes (zip, records stored uncompressed,
    central directory last)."""
    pkl, storages = io.BytesIO(), list[bytes]()
    _Pickler(pkl, storages).dump(obj)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{archive}/data.pkl", pkl.getvalue())
        zf.writestr(f"{archive}/byteorder", "little")
        for key, data in enumerate(storages):
            zf.writestr(f"{archive}/data/{key}", data)
        zf.writestr(f"{archive}/version", "3\n")
        zf.writestr(f"{archive}/.data/serialization_id", "0123456789012345678901234567890123456789")
    return out.getvalue()


def safetensors(tensors: dict[str, int]) -> bytes:
    """A safetensors file: u64 header length, JSON header padded to 8 bytes, data."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset, blobs = 0, []
    for name, numel in tensors.items():
        header[name] = {
            "dtype": "F32",
            "shape": [numel],
            "data_offsets": [offset, offset + 4 * numel],
        }
        blobs.append(b"\x01" * (4 * numel))
        offset += 4 * numel
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + b"".join(blobs)


def _json(obj: object) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode()


def dcp_files(world_size: int, prefix: str = "") -> tuple[list[tuple[str, bytes]], bytes]:
    """Shards ``__<rank>_0.distcp`` (two items each) and the pickled ``.metadata`` that
    locates every item by ``relative_path``, ``offset``, ``length``."""
    shards, storage = [], {}
    for rank in range(world_size):
        fname = f"__{rank}_0.distcp"  # one object per file: pickled once, then memo refs
        a, b = torch_save(Tensor(16, rank)), torch_save(Tensor(8, rank))
        shards.append((prefix + fname, a + b))
        storage[f"model.layers.{rank}.weight"] = {
            "relative_path": fname,
            "offset": 0,
            "length": len(a),
        }
        storage[f"optim.state.{rank}.exp_avg"] = {
            "relative_path": fname,
            "offset": len(a),
            "length": len(b),
        }
    metadata = {
        "state_dict_metadata": {k: {"size": [16], "chunks": [[0]]} for k in storage},
        "planner_data": {k: (k,) for k in storage},
        "storage_data": storage,
        "storage_meta": {"checkpoint_id": None, "save_id": "0" * 32},
    }
    return shards, pickle.dumps(metadata)  # filesystem.py: pickle.dump(metadata, f)


# --- operations ---------------------------------------------------------------------


class Op(NamedTuple):
    """One step of a save: write ``rel`` (``data``), rename ``rel`` to ``dest``, touch or
    remove ``rel``, or run ``call`` (the hpresil manifest). A NamedTuple, not a
    dataclass: tests load this file with ``spec_from_file_location``, without a
    ``sys.modules`` entry, which dataclasses need."""

    kind: str  # "write" | "rename" | "touch" | "unlink" | "call"
    rel: str
    data: bytes = b""
    dest: str = ""
    call: Callable[[Path], object] | None = None

    def describe(self) -> str:
        return f"{self.kind} {self.rel}" + (f" -> {self.dest}" if self.dest else "")

    def apply(self, root: Path) -> None:
        path = root / self.rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.kind == "write":
            path.write_bytes(self.data)
        elif self.kind == "rename":
            os.replace(path, root / self.dest)
        elif self.kind == "touch":
            path.touch()
        elif self.kind == "unlink":
            path.unlink()
        elif self.call is not None:
            self.call(path)

    def tear(self, root: Path) -> None:
        """Leave this operation half done, as a writer killed during it does."""
        path = root / self.rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.kind == "write":  # a few bytes go in one write(): all or (truncated) none
            path.write_bytes(self.data[: len(self.data) // 2] if len(self.data) > 512 else b"")
        elif self.kind == "call":  # atomic_write's temporary file, half written
            (path / f".{MANIFEST}.torn.tmp").write_text('{"format_version": 1, "st')


MANIFEST = "hpresil-manifest.json"


def _w(rel: str, data: bytes) -> Op:
    return Op("write", rel, data)


def _lightning(step: int, world_size: int) -> tuple[list[Op], str]:
    # Lightning >= 2.4 (_atomic_save): torch.save into a temporary file, then a move to
    # the final name. fsspec puts the temporary file in $TMPDIR; here it is a hidden
    # file beside the target, which scanners ignore just the same.
    name = f"epoch={step // 100}-step={step}.ckpt"
    ckpt = {
        "epoch": step // 100,
        "global_step": step,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": {"layer.weight": Tensor(16), "layer.bias": Tensor(4)},
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": step // 100}}}},
        "callbacks": {},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.001}]}],
        "lr_schedulers": [],
    }
    tmp = f".tmp-{name}"
    return [_w(tmp, torch_save(ckpt)), Op("rename", tmp, dest=name)], name


def _hf(step: int, world_size: int) -> tuple[list[Op], str]:
    d = f"checkpoint-{step}"
    ops = [
        _w(f"{d}/config.json", _json({"model_type": "llama", "hidden_size": 16})),
        _w(f"{d}/model.safetensors", safetensors({"model.embed.weight": 64, "lm_head.weight": 32})),
        _w(f"{d}/training_args.bin", torch_save({"output_dir": ".", "save_steps": 100})),
        _w(
            f"{d}/optimizer.pt",
            torch_save({"state": {0: {"exp_avg": Tensor(64)}}, "param_groups": []}),
        ),
        _w(f"{d}/scheduler.pt", torch_save({"last_epoch": step, "_step_count": step + 1})),
    ]
    rng = [f"rng_state_{i}.pth" for i in range(world_size)] if world_size > 1 else ["rng_state.pth"]
    ops += [_w(f"{d}/{name}", torch_save({"python": [3], "cpu": Tensor(4)})) for name in rng]
    state = {"global_step": step, "epoch": step / 1000, "max_steps": 10_000, "log_history": []}
    ops.append(_w(f"{d}/trainer_state.json", _json(state)))  # the main process, last
    return ops, d


def _deepspeed(step: int, world_size: int) -> tuple[list[Op], str]:
    tag = f"global_step{step}"
    model_states: dict[str, object] = {
        "module": {"layer.weight": Tensor(16)},
        "buffer_names": [],
        "optimizer": None,
        "lr_scheduler": None,
        "sparse_tensor_module_names": [],
        "skipped_steps": 0,
        "global_steps": step,
        "global_samples": step * 8,
        "dp_world_size": world_size,
        "mp_world_size": 1,
        "ds_config": {"zero_optimization": {"stage": 2}},
        "ds_version": "0.16.4",
    }
    ops = [_w(f"{tag}/mp_rank_00_model_states.pt", torch_save(model_states))]
    for rank in range(world_size):
        shard = {
            "optimizer_state_dict": {"fp32_flat_groups": [Tensor(8, rank)]},
            "ds_version": "0.16.4",
        }
        ops.append(_w(f"{tag}/zero_pp_rank_{rank}_mp_rank_00_optim_states.pt", torch_save(shard)))
    ops.append(
        _w("zero_to_fp32.py", b"#!/usr/bin/env python\n# recovery script copied by rank 0\n")
    )
    ops.append(_w("latest", tag.encode()))  # rank 0, after every rank's files; no newline
    return ops, tag


def _megatron(step: int, world_size: int) -> tuple[list[Op], str]:
    d = f"iter_{step:07d}"
    shards, metadata = dcp_files(world_size, prefix=f"{d}/")
    ops = [_w(f"{d}/common.pt", torch_save({"iteration": step, "checkpoint_version": 3.0}))]
    ops += [_w(rel, data) for rel, data in shards]
    ops += [
        _w(f"{d}/.metadata.tmp", metadata),
        Op("rename", f"{d}/.metadata.tmp", dest=f"{d}/.metadata"),
    ]
    config = {
        "sharded_backend": "torch_dist",
        "sharded_backend_version": 1,
        "common_backend": "torch",
    }
    ops.append(_w(f"{d}/metadata.json", _json(config)))
    ops.append(_w("latest_checkpointed_iteration.txt", str(step).encode()))
    return ops, d


def _megatron_legacy(step: int, world_size: int) -> tuple[list[Op], str]:
    d = f"iter_{step:07d}"
    args = {
        "tensor_model_parallel_size": world_size,
        "pipeline_model_parallel_size": 1,
        "iteration": step,
    }
    ops = []
    for tp in range(world_size):
        state = {
            "args": args,  # an argparse.Namespace in Megatron; its __dict__ pickles the same keys
            "checkpoint_version": 3.0,
            "iteration": step,
            "model": {"language_model.weight": Tensor(16, tp)},
            "optimizer": {"param_groups": []},
            "rng_state": [{"random_rng_state": (3, (), None)}],
        }
        ops.append(_w(f"{d}/mp_rank_{tp:02d}/model_optim_rng.pt", torch_save(state)))
    ops.append(_w("latest_checkpointed_iteration.txt", str(step).encode()))  # after a barrier
    return ops, d


def _dcp(step: int, world_size: int) -> tuple[list[Op], str]:
    d = f"step-{step}"  # torchtitan's layout: <dump_folder>/checkpoint/step-<N>
    shards, metadata = dcp_files(world_size, prefix=f"{d}/")
    ops = [_w(rel, data) for rel, data in shards]
    ops += [
        _w(f"{d}/.metadata.tmp", metadata),
        Op("rename", f"{d}/.metadata.tmp", dest=f"{d}/.metadata"),
    ]
    return ops, d


def _nemo(step: int, world_size: int) -> tuple[list[Op], str]:
    d = f"megatron_gpt--val_loss=1.23-step={step}-consumed_samples={step * 8}.0"
    shards, metadata = dcp_files(world_size, prefix=f"{d}/weights/")
    ops = [Op("touch", f"{d}-unfinished")]  # rank 0, before the save
    ops += [_w(rel, data) for rel, data in shards]
    meta = f"{d}/weights/.metadata"
    ops += [_w(f"{meta}.tmp", metadata), Op("rename", f"{meta}.tmp", dest=meta)]
    config = {"sharded_backend": "torch_dist", "sharded_backend_version": 1}
    ops.append(_w(f"{d}/weights/metadata.json", _json(config)))
    ops.append(_w(f"{d}/context/io.json", _json({"root": {"type": "GPTModel"}})))
    ops.append(Op("unlink", f"{d}-unfinished"))  # the commit point
    return ops, d


def _hpresil(
    step: int, world_size: int, lease: dict[str, object] | None = None
) -> tuple[list[Op], str]:
    d = f"step-{step}"

    def commit(path: Path) -> object:
        from hpresil.ckpt import manifest

        return manifest.write(path, step, lease=lease)

    ops = [_w(f"{d}/model.bin", b"\x02" * 256)]
    ops += [_w(f"{d}/optim-rank{r}.bin", bytes([r]) * 128) for r in range(world_size)]
    ops.append(Op("call", d, call=commit))  # the manifest, last and atomically
    return ops, d


_PLANS: dict[str, Callable[[int, int], tuple[list[Op], str]]] = {
    "lightning": _lightning,
    "hf": _hf,
    "deepspeed": _deepspeed,
    "megatron": _megatron,
    "megatron-legacy": _megatron_legacy,
    "dcp": _dcp,
    "nemo": _nemo,
    "hpresil": _hpresil,
}


def _ops(
    fmt: str, step: int, world_size: int, lease: dict[str, object] | None
) -> tuple[list[Op], str]:
    if fmt not in _PLANS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if fmt == "hpresil":
        return _hpresil(step, world_size, lease)
    return _PLANS[fmt](step, world_size)


def operations(
    fmt: str, step: int, *, world_size: int = 2, lease: dict[str, object] | None = None
) -> tuple[list[Op], str]:
    """The operations of one save, in order, and the path (relative to the root) a job
    resumes from: for a writer that spreads a save over time (the lab's training job)."""
    return _ops(fmt, step, world_size, lease)


def plan(fmt: str, step: int = 1, *, world_size: int = 2) -> list[str]:
    """The operations of one save of ``fmt``, in order (the last is the commit point)."""
    return [op.describe() for op in _ops(fmt, step, world_size, None)[0]]


def write(
    fmt: str,
    root: Path,
    step: int,
    *,
    stop_after: int | None = None,
    world_size: int = 2,
    torn: bool = False,
    lease: dict[str, object] | None = None,
) -> Path:
    """Save one checkpoint of ``fmt`` at ``step`` under ``root``; returns its path (the
    file or directory a job resumes from). ``stop_after=k`` performs only the first
    ``k`` operations; ``torn`` leaves the next one half done. ``lease`` goes into the
    hpresil manifest."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ops, result = _ops(fmt, step, world_size, lease)
    done = ops if stop_after is None else ops[:stop_after]
    for op in done:
        op.apply(root)
    if torn and stop_after is not None and stop_after < len(ops):
        ops[stop_after].tear(root)
    return root / result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("format", choices=FORMATS)
    parser.add_argument("root", type=Path)
    parser.add_argument("step", type=int)
    parser.add_argument("--stop-after", type=int)
    parser.add_argument("--torn", action="store_true")
    parser.add_argument("--world-size", type=int, default=2)
    args = parser.parse_args()
    path = write(
        args.format,
        args.root,
        args.step,
        stop_after=args.stop_after,
        world_size=args.world_size,
        torn=args.torn,
    )
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
