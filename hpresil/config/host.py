"""Settings of the host fact sources and their checks: ``[checks.ib]``, ``[checks.mounts]``,
``[checks.headroom]``, ``[checks.processes]``, ``[checks.services]``, and the InfiniBand
counter table they share with :mod:`hpresil.adapters.ib`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, NamedTuple, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_ROOT = Path("/sys/class/infiniband")


class IbCounter(NamedTuple):
    """What hpresil knows about one counter under ``counters/``."""

    bits: int | None  # width of a saturating PortCounter (sysfs.c PORT_PMA_ATTR); None: wider
    warn_delta: int | None  # default increase per collection above which it warns; None: not


# Every counter the kernel's core publishes under counters/ (config keys are checked
# against it). The default warn deltas follow ibqueryerrors' example thresholds (10 for
# symbol and recovery errors, cumulative); these are per interval.
IB_COUNTERS: Mapping[str, IbCounter] = MappingProxyType(
    {
        "symbol_error": IbCounter(16, 10),
        "link_error_recovery": IbCounter(8, 0),
        "link_downed": IbCounter(8, 0),
        "port_rcv_errors": IbCounter(16, 10),
        "port_rcv_remote_physical_errors": IbCounter(16, 10),
        "port_rcv_switch_relay_errors": IbCounter(16, None),
        "port_xmit_discards": IbCounter(16, 100),
        "port_xmit_constraint_errors": IbCounter(8, None),
        "port_rcv_constraint_errors": IbCounter(8, None),
        "local_link_integrity_errors": IbCounter(4, 0),
        "excessive_buffer_overrun_errors": IbCounter(4, 0),
        "VL15_dropped": IbCounter(16, None),
        "port_xmit_data": IbCounter(None, None),
        "port_rcv_data": IbCounter(None, None),
        "port_xmit_packets": IbCounter(None, None),
        "port_rcv_packets": IbCounter(None, None),
        "port_xmit_wait": IbCounter(None, None),
        "unicast_xmit_packets": IbCounter(None, None),
        "unicast_rcv_packets": IbCounter(None, None),
        "multicast_xmit_packets": IbCounter(None, None),
        "multicast_rcv_packets": IbCounter(None, None),
    }
)
KNOWN_COUNTERS = frozenset(IB_COUNTERS)
DEFAULT_WARN_DELTAS: Mapping[str, int] = {
    name: c.warn_delta for name, c in IB_COUNTERS.items() if c.warn_delta is not None
}


Delta = Annotated[int, Field(ge=0)]


class IbConfig(BaseModel):
    """``[checks.ib]``: what the node's InfiniBand ports should look like."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sysfs_root: Path = DEFAULT_ROOT
    expected_ports: int | None = Field(default=None, ge=0)  # None: whatever is there
    min_rate_gbps: float | None = Field(default=None, gt=0)  # e.g. 400 for NDR
    ignore_ports: str | None = None  # regex searched in "device/port", e.g. "^mlx5_bond_"
    warn_deltas: dict[str, Delta] = Field(default_factory=lambda: dict(DEFAULT_WARN_DELTAS))
    fail_deltas: dict[str, Delta] = Field(default_factory=dict)  # e.g. {link_downed = 0}
    flap_count: int = Field(default=3, ge=1)  # this many link-down events ...
    flap_window_s: float = Field(default=12 * 3600.0, gt=0)  # ... in this long: FAIL

    @field_validator("ignore_ports")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @field_validator("warn_deltas", "fail_deltas")
    @classmethod
    def _counters(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - KNOWN_COUNTERS)
        if unknown:
            valid = ", ".join(sorted(KNOWN_COUNTERS))
            raise ValueError(f"unknown counter {', '.join(unknown)} (valid: {valid})")
        return value


class MountsConfig(BaseModel):
    """``[checks.mounts]``: file systems jobs rely on (``/home``, ``/scratch``, ...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    required: tuple[str, ...] = ()
    stat_timeout_s: float = Field(default=5.0, gt=0)

    @field_validator("required")
    @classmethod
    def _absolute(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        relative = [p for p in value if not p.startswith("/")]
        if relative:
            raise ValueError(f"mount points must be absolute paths: {', '.join(relative)}")
        return tuple(os.path.normpath(p) for p in value)


class HeadroomConfig(BaseModel):
    """``[checks.headroom]``. A level is crossed when free space is below its percent
    *or* below its GiB; a threshold set to None is not used."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    paths: tuple[str, ...] = ("/", "/tmp", "/var/lib/hpresil")
    disk_warn_free_percent: float | None = Field(default=10.0, ge=0, le=100)
    disk_fail_free_percent: float | None = Field(default=5.0, ge=0, le=100)
    disk_warn_free_gib: float | None = Field(default=None, ge=0)
    disk_fail_free_gib: float | None = Field(default=1.0, ge=0)
    inodes_warn_free_percent: float | None = Field(default=10.0, ge=0, le=100)
    inodes_fail_free_percent: float | None = Field(default=5.0, ge=0, le=100)
    # Memory is mostly the running job's business: by default it only warns.
    memory_warn_available_percent: float | None = Field(default=5.0, ge=0, le=100)
    memory_fail_available_percent: float | None = Field(default=None, ge=0, le=100)
    memory_warn_available_gib: float | None = Field(default=None, ge=0)
    memory_fail_available_gib: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        for what in _PAIRS:
            _check_order(self, what)
        return self


_PAIRS = (
    "disk_{}_free_percent",
    "disk_{}_free_gib",
    "inodes_{}_free_percent",
    "memory_{}_available_percent",
    "memory_{}_available_gib",
)


def _check_order(cfg: HeadroomConfig, pattern: str) -> None:
    warn, fail = getattr(cfg, pattern.format("warn")), getattr(cfg, pattern.format("fail"))
    if warn is not None and fail is not None and fail > warn:
        raise ValueError(f"{pattern.format('fail')} ({fail:g}) is above the warning ({warn:g})")


class ProcessesConfig(BaseModel):
    """``[checks.processes]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    d_state_warn_count: int = Field(default=5, ge=1)  # this many seen in D on two ticks
    d_state_warn_s: float = Field(default=120.0, gt=0)  # one process in D this long: warn
    d_state_fail_s: float = Field(default=600.0, gt=0)  # ... this long: fail, drain
    zombie_warn_count: int = Field(default=200, ge=1)
    ignore_names: tuple[str, ...] = ()  # process names never judged

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.d_state_fail_s < self.d_state_warn_s:
            fail, warn = self.d_state_fail_s, self.d_state_warn_s
            raise ValueError(f"d_state_fail_s ({fail:g}) is below d_state_warn_s ({warn:g})")
        return self


class ServicesConfig(BaseModel):
    """``[checks.services]``: daemons that must run, by process name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    required: tuple[str, ...] = ("munged", "slurmd")
    use_systemd: bool = False  # also ask systemd about their units, when it runs the host
    units: dict[str, str] = Field(  # process -> unit, where not "<process>.service"
        default_factory=lambda: {"munged": "munge.service"}
    )
    systemctl_timeout_s: float = Field(default=5.0, gt=0)

    def unit(self, process: str) -> str:
        return self.units.get(process, f"{process}.service")
