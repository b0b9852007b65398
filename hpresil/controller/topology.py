"""The components nodes share: Slurm's switches, and the racks and power domains the
configuration names (``[topology]``, :mod:`hpresil.config.topology`).

:class:`Fabric` holds the current :class:`Topology` for the report path, which
only reads it; the reconcile loop reads Slurm's switches again every
``refresh_s``. Slurm failing to answer keeps the topology it had (logged once per
episode); a rack or power host list that is not one is a :class:`ConfigError` at
start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hpresil.adapters.slurm import topology as slurm_topology
from hpresil.adapters.slurm.hostlist import expand
from hpresil.config import SlurmConfig
from hpresil.config.topology import TopologyConfig
from hpresil.errors import ConfigError, HpresilError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Component:
    kind: str  # switch, rack, power
    name: str
    nodes: frozenset[str]

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Topology:
    components: tuple[Component, ...] = ()
    _by_node: Mapping[str, tuple[Component, ...]] = field(default_factory=dict, compare=False)
    _within: dict[Component, tuple[Component, ...]] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, components: Iterable[Component]) -> Topology:
        kept = tuple(c for c in components if c.nodes)
        by_node: dict[str, list[Component]] = {}
        for component in kept:
            for node in component.nodes:
                by_node.setdefault(node, []).append(component)
        return cls(kept, {n: tuple(cs) for n, cs in by_node.items()})

    def containing(self, node: str) -> tuple[Component, ...]:
        """The components ``node`` is under, in the order they were named."""
        return self._by_node.get(node, ())

    def within(self, outer: Component) -> tuple[Component, ...]:
        """The components whose nodes are all under ``outer``, ``outer`` included."""
        found = self._within.get(outer)
        if found is None:
            candidates = {c for node in outer.nodes for c in self.containing(node)}
            found = tuple(c for c in candidates if c.nodes <= outer.nodes)
            self._within[outer] = found
        return found


def configured(cfg: TopologyConfig) -> list[Component]:
    """The racks and power domains of the configuration, their host lists expanded."""
    out = []
    for kind, table in (("rack", cfg.racks), ("power", cfg.power)):
        for name, hosts in table.items():
            try:
                nodes = frozenset(expand(hosts))
            except HpresilError as exc:
                raise ConfigError(f"topology.{_key(kind)}.{name}: {exc}") from None
            out.append(Component(kind, name, nodes))
    return out


def switches(cfg: TopologyConfig, slurm: SlurmConfig) -> list[Component]:
    """Slurm's switches, from where ``topology.switches`` says; :class:`HpresilError`
    when they cannot be read."""
    source = cfg.switches
    if source == "none":
        return []
    if source == "slurm":
        found = slurm_topology.from_scontrol(slurm.bin_dir, slurm.conf, slurm.timeout_s)
    else:
        found = slurm_topology.from_file(Path(source))
    return [Component("switch", s.name, s.nodes) for s in found]


class Fabric:
    """The current topology: the configured components, and Slurm's switches as last
    read."""

    def __init__(
        self,
        cfg: TopologyConfig,
        slurm: SlurmConfig,
        *,
        read_switches: Callable[[], Sequence[Component]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self._fixed = configured(cfg)
        self._read = read_switches or (lambda: switches(cfg, slurm))
        self._monotonic = monotonic
        self._read_at: float | None = None
        self._failing = False
        self.current = Topology.of(self._fixed)

    @classmethod
    def fixed(cls, components: Iterable[Component], cfg: TopologyConfig | None = None) -> Fabric:
        """A fabric of ``components`` in place of Slurm's switches (tests, replays)."""
        listed = list(components)
        fabric = cls(cfg or TopologyConfig(), SlurmConfig(), read_switches=lambda: listed)
        fabric.refresh()
        return fabric

    def refresh(self, *, force: bool = True) -> None:
        """Read Slurm's switches again (when ``refresh_s`` has passed, unless forced)."""
        now = self._monotonic()
        if not force and self._read_at is not None and now - self._read_at < self.cfg.refresh_s:
            return
        self._read_at = now
        try:
            found = self._read()
        except HpresilError as exc:
            if not self._failing:
                log.warning("topology: Slurm's switches not read, keeping the last: %s", exc)
            self._failing = True
            return
        if self._failing or len(found) != self._switch_count():
            log.info(
                "topology: %d switch(es), %d rack/power domain(s)", len(found), len(self._fixed)
            )
        self._failing = False
        self.current = Topology.of([*found, *self._fixed])

    def _switch_count(self) -> int:
        return sum(1 for c in self.current.components if c.kind == "switch")


def _key(kind: str) -> str:
    return "racks" if kind == "rack" else kind
