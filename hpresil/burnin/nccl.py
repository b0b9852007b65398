"""nccl-tests ``all_reduce_perf``: the command line and a parser for what it prints.

One data row per message size: size, count, type, redop, root, then time, algbw,
busbw and #wrong out of place, then the same in place; then a summary::

     17179869184  4294967296  float  sum  -1  67369  255.01  478.15  0  67212  255.61  479.26  0
    # Out of bounds values : 0 OK
    # Avg bus bandwidth    : 467.089

Older versions have no ``root`` column and print a float ``error`` instead of the
``#wrong`` count; the ``Out of bounds values`` line is there in both. Lines may
carry an ``srun --label`` prefix (``0: ``). Real outputs are in
``tests/fixtures/burnin/nccl``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from hpresil.adapters import proc
from hpresil.config.burnin import BurninConfig

Runner = Callable[..., proc.Completed]

_LABEL = re.compile(r"^\s*\d+:\s")  # srun --label
_AVG = re.compile(r"^#\s*Avg bus bandwidth\s*:\s*([0-9.]+)")
_OOB = re.compile(r"^#\s*Out of bounds values\s*:\s*(\d+)\s+(OK|FAILED)")
_RANK = re.compile(r"^#\s+Rank\s+\d+\s")
_FAILURE = re.compile(
    r"Test (NCCL |CUDA )?failure|NCCL WARN|error while loading|Segmentation fault"
)


@dataclass(frozen=True)
class Row:
    size: int  # bytes
    busbw_out: float | None  # GB/s, out-of-place
    busbw_in: float | None  # GB/s, in-place
    wrong_out: int | None  # None: not a count (older "error" column, or "N/A")
    wrong_in: int | None

    @property
    def busbw(self) -> float | None:
        values = [v for v in (self.busbw_out, self.busbw_in) if v is not None]
        return sum(values) / len(values) if values else None

    @property
    def wrong(self) -> int:
        return (self.wrong_out or 0) + (self.wrong_in or 0)


@dataclass(frozen=True)
class Output:
    rows: tuple[Row, ...]
    avg_busbw_gbps: float | None
    out_of_bounds: int | None  # from "# Out of bounds values : N OK|FAILED"
    devices: int  # "#  Rank N ..." lines
    failure: str | None  # the first line that reports a failure

    @property
    def wrong(self) -> int:
        """Values the test found wrong: the #wrong column, or the out-of-bounds count."""
        return max(sum(r.wrong for r in self.rows), self.out_of_bounds or 0)

    @property
    def largest(self) -> Row | None:
        return max(self.rows, key=lambda r: r.size, default=None)


def parse(text: str) -> Output:
    columns: list[str] | None = None
    rows: list[Row] = []
    avg = oob = failure = None
    devices = 0
    for raw in text.splitlines():
        line = _LABEL.sub("", raw, count=1).rstrip()
        if (m := _AVG.match(line)) is not None:
            avg = float(m.group(1))
        elif (m := _OOB.match(line)) is not None:
            oob = int(m.group(1))
        elif _RANK.match(line):
            devices += 1
        elif line.startswith("#") and "size" in line.split() and "busbw" in line:
            columns = line.lstrip("#").split()
        elif columns is not None and (row := _row(line.split(), columns)) is not None:
            rows.append(row)
        elif failure is None and _FAILURE.search(line):
            failure = line.strip()
    return Output(tuple(rows), avg, oob, devices, failure)


def argv(cfg: BurninConfig, binary: str, ngpus: int) -> list[str]:
    """One process driving ``ngpus`` GPUs (``-g``), message sizes doubling (``-f 2``)."""
    b, e = cfg.nccl_min_bytes, cfg.nccl_max_bytes
    return [binary, "-b", b, "-e", e, "-f", "2", "-g", str(ngpus)]


def run(cfg: BurninConfig, binary: str, ngpus: int, runner: Runner = proc.run) -> proc.Completed:
    """Run all_reduce_perf; a non-zero exit is answered (its output is judged), a
    timeout or a start failure raises CommandError."""
    env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    return runner(argv(cfg, binary, ngpus), timeout=cfg.nccl_timeout_s, env=env, check=False)


def _row(tokens: list[str], columns: list[str]) -> Row | None:
    if len(tokens) != len(columns) or not tokens[0].isdigit():
        return None
    busbw = [i for i, c in enumerate(columns) if c == "busbw"]
    wrong = [i for i, c in enumerate(columns) if c in ("#wrong", "error")]
    if not busbw:
        return None

    def pick(found: list[int], k: int) -> str | None:
        return tokens[found[k]] if k < len(found) else None

    return Row(
        size=int(tokens[0]),
        busbw_out=_float(pick(busbw, 0)),
        busbw_in=_float(pick(busbw, 1)),
        wrong_out=_count(pick(wrong, 0), columns, wrong),
        wrong_in=_count(pick(wrong, 1), columns, wrong),
    )


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _count(text: str | None, columns: list[str], at: list[int]) -> int | None:
    if text is None or not at or columns[at[0]] != "#wrong" or not text.isdigit():
        return None
    return int(text)
