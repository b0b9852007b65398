"""Where configuration becomes parts: the checks, fact sources and GPU backend a node
runs. The agent and ``hpresil check`` build themselves from here, so both judge a
node the same way.

Tiers are check tags: ``quick`` (cheap, Slurm hooks), ``continuous`` (every agent
tick), ``deep`` (minutes, idle nodes only: DCGM diagnostics), ``burnin`` (stress).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpresil.adapters.gpu import GpuBackend
from hpresil.checks.base import Registry, load_plugins
from hpresil.checks.headroom import HeadroomCheck
from hpresil.checks.ib import IbCheck
from hpresil.checks.mounts import MountsCheck
from hpresil.checks.processes import ProcessesCheck
from hpresil.checks.services import ServicesCheck
from hpresil.clock import Clock, utcnow
from hpresil.config import Config, expand
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

if TYPE_CHECKING:
    from hpresil.adapters.slurm import Slurm, SlurmJob
    from hpresil.host.orphans import OrphanReaper
    from hpresil.host.slurm_jobs import LocalJobsSource

TIERS = ("quick", "continuous", "deep", "burnin")
PROCESS_TABLE_TTL_S = 15.0  # processes and services share a listing this old


def checks_for(cfg: Config) -> list[Check]:
    """Every built-in check, configured from ``cfg`` (less ``checks.disabled``)."""
    every = _gpu_checks(cfg) + _dcgm_checks(cfg) + _host(cfg, node="")[1]
    return [c for c in every if c.name not in cfg.checks.disabled]


def sources_for(
    cfg: Config, node: str, *, table: ProcessLister | None = None
) -> list[FactSource[Any]]:
    """The fact sources the configured quick and continuous checks read (``table``: a
    process listing to share with other sources, such as the agent's jobs source)."""
    return _host(cfg, node, table)[0] + _dcgm_sources(cfg)


def process_table() -> ProcessLister:
    """One process listing for the agent's sources, listed at most every 15 s."""
    return SharedProcessTable(ttl_s=PROCESS_TABLE_TTL_S)


def jobs_source_for(cfg: Config, node: str, table: ProcessLister) -> LocalJobsSource:
    """The agent's view of the Slurm jobs on ``node`` (checkpoints looked up at most
    every ``jobs.observe_s`` per job)."""
    from hpresil.host.job_progress import JobProgress
    from hpresil.host.slurm_jobs import LocalJobsSource

    progress = JobProgress(every_s=cfg.jobs.observe_s)
    return LocalJobsSource(node, list_processes=table, progress=progress)


def reaper_for(cfg: Config, node: str) -> OrphanReaper | None:
    """The orphan reaper when ``jobs.kill_orphans``; it asks Slurm only when job
    processes run here (the adapter is made on first use)."""
    if not cfg.jobs.kill_orphans:
        return None
    from hpresil.host.orphans import OrphanReaper

    slurm: list[Slurm] = []

    def slurm_jobs() -> list[SlurmJob]:
        if not slurm:
            from hpresil.adapters.slurm import Slurm

            slurm.append(Slurm.from_config(cfg.slurm))
        return slurm[0].jobs(active_only=False)

    return OrphanReaper(node, slurm_jobs, grace_s=cfg.jobs.orphan_grace_s)


def with_history(cfg: Config, backend: GpuBackend) -> tuple[GpuBackend, list[FactSource[Any]]]:
    """The GPU backend wrapped so that it keeps a short history of its samples (for
    rates and deltas: clock events, PCIe replays, NVLink counters), and that history
    as a fact source. It keeps as long as the longest configured window needs."""
    from hpresil.adapters.gpu.history import GpuHistoryRecorder

    c = cfg.checks
    windows = (c.clock_events.window_s, c.nvlink.window_s, c.pcie.replay_window_s)
    recorder = GpuHistoryRecorder(backend, retention_s=max(windows) + 2 * cfg.agent.poll_s)
    return recorder, [recorder]


def _gpu_checks(cfg: Config) -> list[Check]:
    from hpresil.checks.clock_events import ClockEventsCheck
    from hpresil.checks.ecc import EccCheck
    from hpresil.checks.fabric import FabricCheck
    from hpresil.checks.gpu_presence import GpuPresenceCheck
    from hpresil.checks.nvlink import NvlinkCheck
    from hpresil.checks.pcie import PcieCheck
    from hpresil.checks.power import PowerCheck
    from hpresil.checks.recovery_action import RecoveryActionCheck
    from hpresil.checks.retired_pages import RetiredPagesCheck
    from hpresil.checks.row_remap import RowRemapCheck
    from hpresil.checks.temperature import TemperatureCheck
    from hpresil.checks.xid import XidCheck

    c = cfg.checks
    return [
        XidCheck(cfg.xid),
        GpuPresenceCheck(),
        EccCheck(c.ecc),
        RowRemapCheck(c.row_remap),
        RetiredPagesCheck(c.retired_pages),
        TemperatureCheck(c.temperature),
        ClockEventsCheck(c.clock_events),
        PowerCheck(c.power),
        PcieCheck(c.pcie),
        NvlinkCheck(c.nvlink),
        FabricCheck(),
        RecoveryActionCheck(),
    ]


def agent_registry(cfg: Config, *, plugins: bool = True) -> Registry:
    """What the agent runs every tick: the quick and continuous tiers (deep and
    burn-in checks take minutes and run on request, on idle nodes)."""
    every = registry_for(cfg, plugins=plugins)
    return Registry(c for c in every if c.tags & {"quick", "continuous"})


def _dcgm_checks(cfg: Config) -> list[Check]:
    if not cfg.dcgm.enabled:
        return []
    from hpresil.checks.dcgm_diag import DcgmDiagCheck
    from hpresil.checks.dcgm_health import DcgmHealthCheck

    return [DcgmHealthCheck(), DcgmDiagCheck()]


def _dcgm_sources(cfg: Config) -> list[FactSource[Any]]:
    if not cfg.dcgm.enabled or "dcgm_health" in cfg.checks.disabled:
        return []
    from hpresil.dcgm.dcgmi import Dcgmi
    from hpresil.dcgm.sources import DcgmHealthSource

    return [
        DcgmHealthSource(
            Dcgmi.from_config(cfg.dcgm),
            interval_s=cfg.dcgm.health_interval_s,
            enable_watches=cfg.dcgm.enable_health_watches,
        )
    ]


def _host(
    cfg: Config, node: str, table: ProcessLister | None = None
) -> tuple[list[FactSource[Any]], list[Check]]:
    c = cfg.checks
    ib = c.ib.model_copy(update={"sysfs_root": expand(str(c.ib.sysfs_root), node)})

    def on(name: str) -> bool:
        return name not in c.disabled

    return host_monitoring(
        ib=ib if on("ib") else None,
        mounts=c.mounts if on("mounts") else None,
        headroom=c.headroom if on("headroom") else None,
        processes=c.processes if on("processes") else None,
        services=c.services if on("services") else None,
        table=table,
    )


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
    """The fact sources (for the agent's :class:`~hpresil.host.collector.Collector`) and
    the matching checks (for its registry) of the host areas given; an area left as
    None is not monitored."""
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


def registry_for(cfg: Config, *, tier: str | None = None, plugins: bool = True) -> Registry:
    """The configured checks (and installed plugins), optionally one tier's."""
    registry = Registry(checks_for(cfg))
    if plugins:
        load_plugins(registry)
    if tier is None:
        return registry
    return Registry(registry.select(tier))
