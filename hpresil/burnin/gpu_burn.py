"""``gpu_burn`` (wilicc/gpu-burn): the command line and a parser for its verdict.

It names the GPUs first, repaints a progress line while it runs, and ends with::

    Tested 8 GPUs:
        GPU 0: OK
        GPU 1: FAULTY

It exits 0 whatever it found (wilicc/gpu-burn#12), so only that summary counts; a
run that aborts (``No clients are alive!``) prints none, and after ``Couldn't init a
GPU test`` its OK means nothing (wilicc/gpu-burn#14, #123: 0 Gflop/s, then OK). gpu_burn loads its
``compare.ptx`` from the working directory unless given ``-c``, so the burn-in
passes the one installed next to the binary. Real outputs are in
``tests/fixtures/burnin/gpu_burn``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hpresil.adapters import proc
from hpresil.config.burnin import BurninConfig

Runner = Callable[..., proc.Completed]

_TESTED = re.compile(r"^\s*Tested (\d+) GPUs:")
_VERDICT = re.compile(r"^\s*GPU (\d+): (OK|FAULTY)\s*$")
_DEVICE = re.compile(r"^\s*GPU (\d+): (.+?) \(UUID: (GPU-[0-9A-Fa-f-]+)\)")
_PROBLEM = re.compile(
    r"Couldn't init|No clients are alive|terminate called|No CUDA devices|Error|DIED"
)


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    uuid: str


@dataclass(frozen=True)
class Output:
    tested: int | None  # from "Tested N GPUs:"; None: no verdict printed
    verdicts: dict[int, bool]  # GPU index -> OK
    devices: dict[int, Device]  # from the "GPU i: NAME (UUID: ...)" lines
    problem: str | None  # the first line that reports trouble
    init_failed: bool = False  # "Couldn't init a GPU test": OK verdicts are void


def parse(text: str) -> Output:
    tested: int | None = None
    verdicts: dict[int, bool] = {}
    devices: dict[int, Device] = {}
    problem: str | None = None
    init_failed = False
    for line in re.split(r"[\r\n]+", text):
        if (m := _TESTED.match(line)) is not None:
            tested, verdicts = int(m.group(1)), {}  # the last summary wins
        elif tested is not None and (m := _VERDICT.match(line)) is not None:
            verdicts[int(m.group(1))] = m.group(2) == "OK"
        elif (m := _DEVICE.match(line)) is not None:
            index = int(m.group(1))
            devices[index] = Device(index, m.group(2).strip(), m.group(3).lower())
        elif _PROBLEM.search(line):
            init_failed = init_failed or "Couldn't init" in line
            problem = problem or " ".join(line.split())[:200]
    return Output(tested, verdicts, devices, problem, init_failed)


def argv(cfg: BurninConfig, binary: str) -> list[str]:
    args = [binary]
    if cfg.gpu_burn_tensor_cores:
        args.append("-tc")
    compare = _compare_file(cfg, binary)
    if compare is not None:
        args += ["-c", compare]
    return [*args, str(cfg.gpu_burn_s)]


def run(cfg: BurninConfig, binary: str, runner: Runner = proc.run) -> proc.Completed:
    """Run gpu_burn for ``gpu_burn_s`` (plus two minutes to start and stop); a
    timeout or a start failure raises CommandError."""
    env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    timeout = cfg.gpu_burn_s + 120.0
    return runner(argv(cfg, binary), timeout=timeout, env=env, check=False)


def _compare_file(cfg: BurninConfig, binary: str) -> str | None:
    if cfg.gpu_burn_compare is not None:
        return cfg.gpu_burn_compare
    beside = Path(binary).resolve().parent / "compare.ptx"
    return str(beside) if beside.is_file() else None
