"""The burn-in of one node, start to finish: :func:`run_burnin`.

Order: every GPU's GEMM then copy, all GPUs at once (one thread each, so the node is
under full load, and one progress bar each); then ``all_reduce_perf``; then
``gpu_burn``. The host-facing parts (GPU library, PATH lookup, subprocess runner,
clock) are parameters, so tests pass fakes instead of patching.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import statistics
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from hpresil.adapters import proc
from hpresil.burnin import gpu_burn, nccl
from hpresil.burnin.expected import GIB, model_for
from hpresil.burnin.gpulib import NoGpuLibrary, open_library
from hpresil.burnin.judge import (
    Figure,
    Floor,
    judge_figure,
    judge_gpu_burn,
    judge_nccl,
    unknown,
    unsupported,
)
from hpresil.burnin.kernel import (
    GpuLibrary,
    Measurement,
    OnProgress,
    copy_gbps,
    measure,
    tflops,
)
from hpresil.burnin.names import (
    CHECK_GPU_BURN,
    CHECK_MATMUL,
    CHECK_MEMBW,
    CHECK_NCCL,
    MEMBW_GBPS,
    TFLOPS,
)
from hpresil.clock import utcnow
from hpresil.config.burnin import BurninConfig, Dtype
from hpresil.errors import CommandError
from hpresil.vocab import CheckResult, GpuIdentity

log = logging.getLogger(__name__)

FleetMedians = Mapping[str, Mapping[str, float]]  # GPU name -> metric (tflops, ...) -> median
LibraryLoader = Callable[[], GpuLibrary]
Which = Callable[[str], str | None]
NODE_MEDIAN_MIN = 3  # GPUs of one model needed for a node median


@dataclass(frozen=True)
class GpuRun:
    """What one GPU measured; ``error`` says why a figure is missing."""

    index: int
    device_name: str | None = None
    pci_bus_id: str | None = None
    dtype: Dtype | None = None
    size: int = 0
    copy_bytes: int = 0
    matmul: Measurement | None = None
    copy: Measurement | None = None
    error: str | None = None

    @property
    def tflops(self) -> float | None:
        return tflops(self.size, self.matmul) if self.matmul else None

    @property
    def membw_gbps(self) -> float | None:
        return copy_gbps(self.copy_bytes, self.copy) if self.copy else None


def run_burnin(
    cfg: BurninConfig,
    gpus: Sequence[GpuIdentity | None] = (),
    median: FleetMedians | None = None,
    progress: bool = True,
    *,
    library: LibraryLoader = open_library,
    which: Which = shutil.which,
    runner: nccl.Runner = proc.run,
    clock: Callable[[], datetime] = utcnow,
) -> list[CheckResult]:
    """Burn in this node. ``gpus`` are the node's GPUs as NVML knows them (matched to
    CUDA devices by PCI address, else index; None where unknown); ``median`` the
    fleet medians by GPU name, if the controller gave them."""
    known = [g for g in gpus if g is not None]
    results, identities = _kernels(cfg, known, median or {}, progress, library, clock)
    if cfg.nccl:
        with _status(progress, f"all_reduce_perf ({cfg.nccl_max_bytes} messages)"):
            results.append(_nccl(cfg, identities, which, runner, clock))
    if cfg.gpu_burn:
        with _status(progress, f"gpu_burn for {cfg.gpu_burn_s} s"):
            results.extend(_gpu_burn(cfg, identities, which, runner, clock))
    return results


# --- per-GPU kernels ---
def _kernels(
    cfg: BurninConfig,
    known: list[GpuIdentity],
    median: FleetMedians,
    show: bool,
    library: LibraryLoader,
    clock: Callable[[], datetime],
) -> tuple[list[CheckResult], list[GpuIdentity]]:
    try:
        lib = library()
        count = lib.device_count()
    except NoGpuLibrary as exc:
        return _unsupported(str(exc), clock()), known
    if count < 1:
        return _unsupported(f"no CUDA GPU visible to {lib.name}", clock()), known
    with _Bars(show, cfg) as bars, ThreadPoolExecutor(count, "burnin") as pool:
        runs = list(pool.map(lambda i: _one_gpu(lib, i, cfg, bars), range(count)))
    identities = [_identity(r, known) for r in runs]
    return _judge_runs(cfg, runs, identities, median, lib.name, clock()), identities


def _unsupported(why: str, at: datetime) -> list[CheckResult]:
    return [unsupported(CHECK_MATMUL, why, at), unsupported(CHECK_MEMBW, why, at)]


def _one_gpu(lib: GpuLibrary, index: int, cfg: BurninConfig, bars: _Bars) -> GpuRun:
    phase = bars.gpu(index)
    try:
        kernel = lib.open(
            index, size=cfg.matmul_size, dtype=cfg.dtype, copy_bytes=cfg.membw_mib << 20
        )
    except Exception as exc:  # a GPU that cannot even allocate: that GPU's results say so
        log.warning("GPU %d: burn-in could not start: %r", index, exc)
        return GpuRun(index, error=f"could not start: {exc}")
    try:
        run = GpuRun(
            index,
            kernel.device_name,
            kernel.pci_bus_id,
            kernel.dtype,
            kernel.size,
            kernel.copy_bytes,
        )
        bars.named(index, kernel.device_name)
        m = measure(
            kernel,
            "gemm",
            duration_s=cfg.duration_s,
            warmup=cfg.warmup_iterations,
            progress=phase(0.0, cfg.duration_s),
        )
        run = replace(run, matmul=m)
        bars.figure(index, f"{run.tflops:,.0f} TFLOPS")
        c = measure(
            kernel,
            "copy",
            duration_s=cfg.membw_duration_s,
            warmup=cfg.warmup_iterations,
            progress=phase(cfg.duration_s, cfg.membw_duration_s),
        )
        run = replace(run, copy=c)
        bars.figure(index, f"{run.tflops:,.0f} TFLOPS  {run.membw_gbps:,.0f} GB/s")
    except Exception as exc:  # CUDA error, lost GPU: report it on this GPU, go on with the rest
        log.warning("GPU %d: burn-in failed: %r", index, exc)
        run = replace(run, error=f"failed: {exc}")
    finally:
        with contextlib.suppress(Exception):
            kernel.close()
    return run


def _identity(run: GpuRun, known: list[GpuIdentity]) -> GpuIdentity:
    if run.pci_bus_id is not None:
        same = next((g for g in known if g.pci_bus_id == run.pci_bus_id), None)
        if same is not None:
            return same
    same = next((g for g in known if g.index == run.index), None)
    if same is not None and (run.pci_bus_id is None or same.pci_bus_id is None):
        return same
    return GpuIdentity(index=run.index, pci_bus_id=run.pci_bus_id, name=run.device_name)


def _judge_runs(
    cfg: BurninConfig,
    runs: list[GpuRun],
    gpus: list[GpuIdentity],
    fleet: FleetMedians,
    library: str,
    at: datetime,
) -> list[CheckResult]:
    names = [g.name or r.device_name or "" for r, g in zip(runs, gpus, strict=True)]
    node = _node_medians(runs, names)
    results: list[CheckResult] = []
    for run, gpu, name in zip(runs, gpus, names, strict=True):
        model = model_for(name)
        medians = fleet.get(name, {})
        where = f"GPU {gpu.index}"
        common = {"library": library, "dtype": run.dtype, "size": run.size}
        if run.matmul is not None and run.tflops is not None:
            expected = model.matmul_tflops if model and run.dtype in ("bf16", "fp16") else None
            figure = Figure(
                CHECK_MATMUL,
                TFLOPS,
                "TFLOPS",
                run.tflops,
                gpu,
                model,
                expected,
                medians.get(TFLOPS),
                node.get((name, TFLOPS)),
                {**common, **_timing(run.matmul)},
            )
            results.append(judge_figure(figure, cfg.threshold, at))
        else:
            results.append(
                unknown(CHECK_MATMUL, f"{where}: GEMM {run.error or 'not run'}", at, gpu)
            )
        if run.copy is not None and run.membw_gbps is not None:
            figure = Figure(
                CHECK_MEMBW,
                MEMBW_GBPS,
                "GB/s",
                run.membw_gbps,
                gpu,
                model,
                model.membw_gbps if model else None,
                medians.get(MEMBW_GBPS),
                node.get((name, MEMBW_GBPS)),
                {"library": library, "bytes": run.copy_bytes, **_timing(run.copy)},
            )
            results.append(judge_figure(figure, cfg.threshold, at))
        else:
            results.append(unknown(CHECK_MEMBW, f"{where}: copy {run.error or 'not run'}", at, gpu))
    return results


def _node_medians(runs: list[GpuRun], names: list[str]) -> dict[tuple[str, str], float]:
    values: dict[tuple[str, str], list[float]] = {}
    for run, name in zip(runs, names, strict=True):
        for metric, value in ((TFLOPS, run.tflops), (MEMBW_GBPS, run.membw_gbps)):
            if value is not None:
                values.setdefault((name, metric), []).append(value)
    return {k: statistics.median(v) for k, v in values.items() if len(v) >= NODE_MEDIAN_MIN}


def _timing(m: Measurement) -> dict[str, float | int]:
    return {"iterations": m.iterations, "seconds": round(m.seconds, 3)}


# --- nccl-tests, gpu_burn ---
def _nccl(
    cfg: BurninConfig,
    gpus: list[GpuIdentity],
    which: Which,
    runner: nccl.Runner,
    clock: Callable[[], datetime],
) -> CheckResult:
    binary = which(cfg.nccl_binary)
    if binary is None:
        return unsupported(CHECK_NCCL, f"{cfg.nccl_binary} not on PATH (nccl-tests)", clock())
    if not gpus:
        return unsupported(CHECK_NCCL, "no GPUs to run all_reduce_perf on", clock())
    try:
        done = nccl.run(cfg, binary, len(gpus), runner)
    except CommandError as exc:
        return unknown(CHECK_NCCL, f"all_reduce_perf: {exc}", clock())
    out = nccl.parse(done.stdout + "\n" + done.stderr)
    floor = _floor(cfg, gpus, out)
    return judge_nccl(out, returncode=done.returncode, ngpus=len(gpus), floor=floor, at=clock())


def _floor(cfg: BurninConfig, gpus: list[GpuIdentity], out: nccl.Output) -> Floor | None:
    """The configured floor for the node's model (or GPU name); else the built-in one,
    when the node has its GPU count and the messages were as large as its source's."""
    names = {g.name for g in gpus}
    if len(names) != 1:
        return None  # unknown or mixed models
    name = names.pop() or ""
    model = model_for(name)
    for key in (model.key if model else None, name):
        if key and key in cfg.floors:
            return Floor(cfg.floors[key], f"floors.{key} in the configuration")
    largest = out.largest
    if model is None or model.allreduce_floor_gbps is None or largest is None:
        return None
    if len(gpus) != model.allreduce_gpus or largest.size < model.allreduce_bytes:
        return None
    size = f"{model.allreduce_bytes / GIB:g} GiB"
    return Floor(model.allreduce_floor_gbps, f"{model.label}, {model.allreduce_gpus} GPUs, {size}")


def _gpu_burn(
    cfg: BurninConfig,
    gpus: list[GpuIdentity],
    which: Which,
    runner: nccl.Runner,
    clock: Callable[[], datetime],
) -> list[CheckResult]:
    binary = which(cfg.gpu_burn_binary)
    if binary is None:
        return [unsupported(CHECK_GPU_BURN, f"{cfg.gpu_burn_binary} not on PATH", clock())]
    try:
        done = gpu_burn.run(cfg, binary, runner)
    except CommandError as exc:
        return [unknown(CHECK_GPU_BURN, f"gpu_burn: {exc}", clock())]
    out = gpu_burn.parse(done.stdout + "\n" + done.stderr)
    return judge_gpu_burn(out, gpus, cfg.gpu_burn_s, clock())


# --- progress, on stderr ---
class _Bars:
    """One bar per GPU over its GEMM then copy phases; silent unless ``show``."""

    def __init__(self, show: bool, cfg: BurninConfig) -> None:
        from rich.console import Console  # only the burn-in draws progress bars
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        self._total = cfg.duration_s + cfg.membw_duration_s
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[figure]}"),
            console=Console(stderr=True),
            disable=not show,
        )
        self._tasks: dict[int, Any] = {}  # GPU index -> rich TaskID

    def __enter__(self) -> _Bars:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def gpu(self, index: int) -> Callable[[float, float], OnProgress]:
        task = self._progress.add_task(f"GPU {index}", total=self._total, figure="")
        self._tasks[index] = task

        def phase(offset: float, length: float) -> OnProgress:
            return lambda share: self._progress.update(task, completed=offset + share * length)

        return phase

    def named(self, index: int, name: str) -> None:
        self._progress.update(self._tasks[index], description=f"GPU {index} {name}")

    def figure(self, index: int, text: str) -> None:
        self._progress.update(self._tasks[index], figure=text)


@contextlib.contextmanager
def _status(show: bool, what: str) -> Iterator[None]:
    if not show:
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(f"burn-in: {what}"):
        yield
