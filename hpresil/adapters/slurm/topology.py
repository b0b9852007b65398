"""Slurm's fabric: the switches of ``topology/tree`` and the nodes under each.

Two sources, one format. ``scontrol show topology`` prints what the running
slurmctld uses, one line per switch (``SwitchName=leaf1 Level=0 LinkSpeed=1
Nodes=node[1-2]``; upper levels add ``Switches=leaf[1-2]``); ``topology.conf``
(topology.conf(5)) holds the same keys, with ``#`` comments and ``\\`` line
continuations. Other keys are ignored; a line without ``SwitchName=`` is not a
switch (``scontrol`` says "No topology information available" without the plugin).

A switch's nodes are its own and those of every switch below it (``topology.conf``
names only the leaves' nodes; ``scontrol`` prints the union already).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hpresil.adapters import proc
from hpresil.adapters.slurm.hostlist import expand
from hpresil.errors import SlurmError, SlurmParseError


@dataclass(frozen=True)
class Switch:
    name: str
    nodes: frozenset[str]  # every node under it, through the switches below


def parse(text: str) -> list[Switch]:
    """The switches in ``text`` (``scontrol show topology`` or topology.conf)."""
    own: dict[str, set[str]] = {}
    below: dict[str, list[str]] = {}
    for line in _lines(text):
        fields = _fields(line)
        name = fields.get("switchname")
        if not name:
            continue
        own[name] = set(expand(fields["nodes"])) if fields.get("nodes") else set()
        below[name] = expand(fields["switches"]) if fields.get("switches") else []
    return [Switch(name, frozenset(_under(name, own, below, ()))) for name in own]


def from_scontrol(bin_dir: Path | None, conf: Path | None, timeout: float) -> list[Switch]:
    """The topology the running slurmctld uses; :class:`SlurmError` when it cannot say."""
    exe = str(bin_dir / "scontrol") if bin_dir else "scontrol"
    env = {"SLURM_CONF": str(conf)} if conf else None
    done = proc.run([exe, "show", "topology"], timeout=timeout, env=env, error=SlurmError)
    return parse(done.stdout)


def from_file(path: Path) -> list[Switch]:
    """The switches of a topology.conf; :class:`SlurmParseError` when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise SlurmParseError(f"topology {path}: {exc.strerror or exc}") from None
    return parse(text)


def _lines(text: str) -> Iterable[str]:
    """Logical lines: comments stripped, continuations joined."""
    pending = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def _fields(line: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for word in line.split():
        key, sep, value = word.partition("=")
        if sep:
            out[key.lower()] = value
    return out


def _under(
    name: str,
    own: Mapping[str, set[str]],
    below: Mapping[str, list[str]],
    path: tuple[str, ...],
) -> set[str]:
    if name in path:
        raise SlurmParseError(f"topology: switch {name} is below itself ({' > '.join(path)})")
    nodes = set(own.get(name, ()))
    for child in below.get(name, ()):
        nodes |= _under(child, own, below, (*path, name))
    return nodes
