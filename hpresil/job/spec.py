"""hpresil's part of a job's Slurm comment: ``#SBATCH --comment=hpresil:ckpt=DIR,budget=3``.

The comment is free text shared with other tools, so hpresil owns exactly one
whitespace-delimited token that starts with ``hpresil:``; everything else is left
alone. After the prefix come ``key=value`` pairs separated by commas:

* ``ckpt``   — the checkpoint directory, an absolute path (the controller reads the
  comment on another host, where a relative path would mean nothing). A path with a
  comma or whitespace cannot be written here: set ``HPRESIL_CKPT_DIR`` instead.
* ``budget`` — how many restarts hpresil may spend on the job (an integer ≥ 0).
* ``hang``   — seconds without progress before the job counts as hung; ``600``,
  ``600s``, ``10m`` and ``1h`` are accepted.

Parsing never raises: the controller reads every job's comment and one user's typo
must not stop it. Problems come back as one-line strings and the valid keys still
count. Standard library only: the TaskProlog imports this before every task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

PREFIX = "hpresil:"
KEYS = ("budget", "ckpt", "hang")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
T = TypeVar("T")


@dataclass(frozen=True)
class JobSpec:
    """What a job asked of hpresil; ``None`` where it said nothing (or said it wrong)."""

    ckpt_dir: Path | None = None
    budget: int | None = None
    hang_s: float | None = None


def parse_comment(comment: str) -> tuple[JobSpec, list[str]]:
    """The job's spec and the problems found in its ``hpresil:`` token (never raises)."""
    tokens = [t for t in (comment or "").split() if t.startswith(PREFIX)]
    if not tokens:
        return JobSpec(), []
    problems = []
    if len(tokens) > 1:
        problems.append(f"hpresil comment: {len(tokens)} hpresil: tokens; using the first")
    values = _pairs(tokens[0][len(PREFIX) :], problems)
    spec = JobSpec(
        ckpt_dir=_checked(values, "ckpt", _ckpt_dir, problems),
        budget=_checked(values, "budget", _budget, problems),
        hang_s=_checked(values, "hang", _hang_seconds, problems),
    )
    return spec, problems


def _pairs(text: str, problems: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not value:
            problems.append(f"hpresil comment: {item!r} is not key=value")
        elif key not in KEYS:
            problems.append(f"hpresil comment: unknown key {key!r} (valid: {', '.join(KEYS)})")
        elif key in values:
            problems.append(f"hpresil comment: {key} given twice; using the first")
        else:
            values[key] = value
    return values


def comment_field(scontrol_line: str) -> str | None:
    """The ``Comment=`` value of one ``scontrol show job -o`` line, or None when the job
    has no comment.

    Slurm 22.05 prints ``... WorkDir=... [AdminComment=...] [SystemComment=...]
    Comment=<text> [Extra=...] StdErr=...`` on one line, so the comment runs from
    `` Comment=`` to the next field Slurm prints after it (the comment may contain
    spaces). A comment that itself contains `` StdErr=`` would be cut short there;
    the ``hpresil:`` token is found either way unless it comes after that text.
    """
    start = scontrol_line.find(" Comment=")
    if start < 0:
        return None
    rest = scontrol_line[start + len(" Comment=") :].rstrip("\n")
    ends = [rest.find(f" {key}=") for key in _FIELDS_AFTER_COMMENT]
    end = min((i for i in ends if i >= 0), default=len(rest))
    return rest[:end].strip()


# The fields scontrol (22.05 to 24.x) prints after Comment=, in any job.
_FIELDS_AFTER_COMMENT = ("Extra", "StdErr", "StdIn", "StdOut", "Power", "TresPerNode")


def _checked(
    values: dict[str, str], key: str, convert: Callable[[str], T], problems: list[str]
) -> T | None:
    if key not in values:
        return None
    try:
        return convert(values[key])
    except ValueError as exc:
        problems.append(f"hpresil comment: {key}={values[key]!r}: {exc}")
        return None


def _ckpt_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_absolute():
        raise ValueError("must be an absolute path")
    return path


def _budget(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number of restarts (0 or more)")
    return int(value)


def _hang_seconds(value: str) -> float:
    number, scale = value, 1.0
    if value[-1:] in _UNITS:
        number, scale = value[:-1], _UNITS[value[-1]]
    try:
        seconds = float(number) * scale
    except ValueError:
        raise ValueError("must be seconds, optionally with s, m or h (600, 10m)") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError("must be more than 0 seconds")
    return seconds
