"""Expand Slurm host lists (``node[1-3,7],gpu-a[01-02]``) without calling Slurm."""

from __future__ import annotations

import re

from hpresil.errors import SlurmParseError

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def expand(hostlist: str) -> list[str]:
    """``"node[1-3],login"`` -> ``["node1", "node2", "node3", "login"]``."""
    out: list[str] = []
    for part in _split_top(hostlist.strip()):
        out.extend(_expand_one(part))
    return out


def _split_top(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p]


def _expand_one(part: str) -> list[str]:
    m = re.match(r"^([^\[]*)\[([^\]]+)\](.*)$", part)
    if not m:
        return [part]
    prefix, ranges, rest = m.groups()
    names: list[str] = []
    for item in ranges.split(","):
        r = _RANGE.match(item)
        if not r:
            raise SlurmParseError(f"bad host list {part!r}")
        lo, hi = r.group(1), r.group(2) or r.group(1)
        width = len(lo) if lo.startswith("0") else 0
        for n in range(int(lo), int(hi) + 1):
            names.extend(f"{prefix}{n:0{width}d}{tail}" for tail in _expand_one(rest or ""))
    return names
