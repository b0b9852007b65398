"""Fact sources and checks for the host areas that are configured.

``host_monitoring(ib=..., mounts=...)`` answers the sources for the agent's
:class:`~hpresil.host.collector.Collector` and the matching checks for its registry;
an area left as None is not monitored.
"""

from __future__ import annotations

from typing import Any

from hpresil.checks.headroom import HeadroomCheck
from hpresil.checks.ib import IbCheck
from hpresil.checks.mounts import MountsCheck
from hpresil.checks.processes import ProcessesCheck
from hpresil.checks.services import ServicesCheck
from hpresil.clock import Clock, utcnow
from hpresil.config.host import (
    HeadroomConfig,
    IbConfig,
    MountsConfig,
    ProcessesConfig,
    ServicesConfig,
)
from hpresil.host.headroom import HeadroomSource
from hpresil.host.ib import IbSource
from hpresil.host.mounts import MountSource
from hpresil.host.processes import ProcessesSource
from hpresil.host.procs import ProcessLister, SharedProcessTable
from hpresil.host.services import ServicesSource
from hpresil.vocab.snapshot import Check, FactSource

PROCESS_TABLE_TTL_S = 15.0


def host_monitoring(
    *,
    ib: IbConfig | None = None,
    mounts: MountsConfig | None = None,
    headroom: HeadroomConfig | None = None,
    processes: ProcessesConfig | None = None,
    services: ServicesConfig | None = None,
    clock: Clock = utcnow,
    table: ProcessLister | None = None,
) -> tuple[list[FactSource[Any]], list[Check]]:
    sources: list[FactSource[Any]] = []
    checks: list[Check] = []
    # processes and services read one listing, at most 15 s old: listing every process
    # is the largest cost of a tick, and their thresholds are minutes (D state) or
    # seconds that a 15 s delay does not change (a service down)
    # (the agent passes the table it also gives its jobs source)
    if table is None:
        table = SharedProcessTable(ttl_s=PROCESS_TABLE_TTL_S)
    if ib is not None:
        sources.append(IbSource(ib, clock=clock))
        checks.append(IbCheck(ib))
    if mounts is not None:
        sources.append(MountSource(mounts))
        checks.append(MountsCheck(mounts))
    if headroom is not None:
        sources.append(HeadroomSource(headroom))
        checks.append(HeadroomCheck(headroom))
    if processes is not None:
        sources.append(ProcessesSource(processes, clock=clock, list_processes=table))
        checks.append(ProcessesCheck(processes))
    if services is not None:
        sources.append(ServicesSource(services, list_processes=table))
        checks.append(ServicesCheck(services))
    return sources, checks
