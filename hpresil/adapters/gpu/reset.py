"""A GPU reset, as the recovery ladder's reset rung asks the node's agent for it:
``nvidia-smi -r -i GPU`` (``--gpu-reset``), one GPU at a time, or every GPU at once
when none is named (NVSwitch systems reset them together).

NVML has no reset of its own that works on every driver, so nvidia-smi does it, and
it refuses when it must: a process still holds the GPU (a CUDA job, the persistence
daemon in some modes, an NVSwitch system's fabric manager), the GPU is off the bus, the
driver will not. A refusal is an answer, not an error: the ladder climbs to a reboot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hpresil.adapters import proc
from hpresil.errors import CommandError

Runner = Callable[..., proc.Completed]
CHECK = "gpu_reset"  # the check name of a reset's results


@dataclass(frozen=True)
class ResetOutcome:
    target: str  # the GPU as given to -i (a PCI bus id or an index); "all" for every GPU
    done: bool
    message: str  # nvidia-smi's own words, in a line


def reset(
    targets: Sequence[str],
    *,
    binary: str = "nvidia-smi",
    timeout_s: float = 120.0,
    runner: Runner = proc.run,
) -> list[ResetOutcome]:
    """Reset each of ``targets`` (none: every GPU at once); an outcome per reset."""
    each: list[str | None] = [*targets] or [None]
    return [_one(target, binary, timeout_s, runner) for target in each]


def _one(target: str | None, binary: str, timeout_s: float, runner: Runner) -> ResetOutcome:
    argv = [binary, "-r", *([] if target is None else ["-i", target])]
    name = target or "all"
    try:
        done = runner(argv, timeout=timeout_s, check=False)
    except CommandError as exc:  # not installed, or it hung
        return ResetOutcome(name, False, _line(str(exc)))
    text = _line(done.stdout + "\n" + done.stderr) or f"exit status {done.returncode}"
    return ResetOutcome(name, done.returncode == 0, text)


def _line(text: str) -> str:
    return " ".join(text.split())[:400]
