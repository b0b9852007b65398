"""The ``[dcgm]`` configuration table (:class:`hpresil.config.Config` embeds it)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field

# A generous hard limit per diagnostic level: -r 1 takes seconds, -r 2 about two
# minutes, -r 3 about 15 minutes, -r 4 30-60+ minutes on 8 GPUs (gpu-health.md s4).
DIAG_TIMEOUTS_S: Mapping[int, float] = MappingProxyType({1: 120.0, 2: 600.0, 3: 2400.0, 4: 7200.0})


class DcgmConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True  # False: no DCGM source or checks at all
    binary: str = Field(default="dcgmi", min_length=1)  # name on $PATH, or a path
    host: str | None = None  # --host for a host engine that is not the local default
    health_timeout_s: float = Field(default=20.0, gt=0)  # one `dcgmi health -c -j`
    health_interval_s: float = Field(default=60.0, ge=0)  # query at most this often
    enable_health_watches: bool = True  # run `dcgmi health -s a` when no watch is set
    diag_level: int = Field(default=2, ge=1, le=4)  # deep tier: `dcgmi diag -r N`
    diag_iterations: int = Field(default=1, ge=1, le=100)  # --iterations when > 1
    # One run's hard limit (all iterations); None: DIAG_TIMEOUTS_S[level] x iterations.
    diag_timeout_s: float | None = Field(default=None, gt=0)
