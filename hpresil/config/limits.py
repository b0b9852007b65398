"""The ``[policy.limits]`` table: how much of the fleet hpresil may take out of service.

A check that misfires everywhere (a driver update, a bad threshold, a switch that
serves a whole row) must not drain the cluster. Two limits, as policy:

- the **cap**: at most ``max_out`` nodes out of service because of hpresil, and at
  most ``max_out_pct`` of the nodes Slurm lists (whichever is smaller; the share
  allows at least one node). Past it a drain is recorded as held back, not done, and
  a webhook alert goes out; the jobs of a fault in ``never_wait`` (a GPU fallen off
  the bus: the job on it is dead either way) are still requeued.
- the **breaker**: one failure category on more than ``breaker_nodes`` nodes within
  ``breaker_window_s`` is the check or the environment, not the nodes. The breaker
  for that category trips: its drains are held back until an operator resets it
  (``hpresil breaker reset CATEGORY``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from hpresil.vocab import Category


class LimitsConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_out: int = Field(default=1000, ge=0)  # nodes out because of hpresil, at most
    max_out_pct: float = Field(default=10.0, ge=0, le=100)  # ... and this share of the fleet
    never_wait: tuple[Category, ...] = (Category.GPU_LOST_PCIE,)  # past the cap: requeue still
    breaker_nodes: int = Field(default=10, ge=1)  # one category on more nodes than this ...
    breaker_window_s: float = Field(default=900.0, gt=0)  # ... within this long trips it

    def allowed_out(self, fleet: int) -> int:
        """How many nodes may be out of service because of hpresil in a fleet of
        ``fleet`` nodes (the share allows at least one)."""
        return min(self.max_out, max(1, int(self.max_out_pct * fleet / 100)))
