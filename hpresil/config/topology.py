"""The ``[topology]`` table: which nodes share a component, and when their faults are
the component's.

Components come from Slurm's own fabric (``topology/tree``: ``scontrol show
topology``, or a ``topology.conf`` named here) and, where configured, from racks and
power domains written as Slurm host lists. When at least ``min_nodes`` nodes under
one component, and at least ``min_share`` of its nodes, open incidents of the same
category within ``window_s``, and the component's kind can cause that category,
the faults are the component's: one shared incident names it, the nodes' own
incidents are kept under it and do not count against their MTTF.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from hpresil.vocab import Category

_SWITCH = (Category.IB_NETWORK,)
_RACK = (
    Category.IB_NETWORK,  # the top-of-rack switch
    Category.THERMAL_POWER,  # the rack's cooling and power shelf
    Category.NVLINK_NVSWITCH,  # a rack-scale NVLink domain (NVL72 switch trays)
)
_POWER = (Category.THERMAL_POWER, Category.GPU_LOST_PCIE, Category.HOST)


class TopologyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # "slurm": ask slurmctld (`scontrol show topology`); a path: read that topology.conf;
    # "none": no switches
    switches: str = "slurm"
    refresh_s: float = Field(default=300.0, gt=0)  # read the topology again this often
    racks: dict[str, str] = {}  # rack name -> Slurm host list, e.g. rack01 = "gpu[001-018]"
    power: dict[str, str] = {}  # power domain (PDU, busway) -> host list
    # which failure categories a component of each kind can cause
    switch_categories: tuple[Category, ...] = _SWITCH
    rack_categories: tuple[Category, ...] = _RACK
    power_categories: tuple[Category, ...] = _POWER
    min_nodes: int = Field(default=2, ge=2)  # nodes under one component failing alike ...
    # ... and this share of its nodes (a quarter: a 32-node leaf is recognised at its
    # 8th node, before the breaker's default 10 nodes) ...
    min_share: float = Field(default=0.25, gt=0, le=1)
    window_s: float = Field(default=600.0, gt=0)  # ... within this long

    def categories(self, kind: str) -> tuple[Category, ...]:
        """What a component of ``kind`` (switch, rack, power) can cause."""
        return {
            "switch": self.switch_categories,
            "rack": self.rack_categories,
            "power": self.power_categories,
        }.get(kind, ())
