"""Where configuration becomes parts: the checks, fact sources and GPU backend a node
runs. The agent and ``hpresil check`` build themselves from here, so both judge a
node the same way.

Tiers are check tags: ``quick`` (cheap, Slurm hooks), ``continuous`` (every agent
tick), ``deep`` (minutes, idle nodes only: DCGM diagnostics), ``burnin`` (stress).
"""

from __future__ import annotations

from typing import Any

from hpresil.agent.snapshot import FactSource
from hpresil.checks.base import Check, Registry, load_plugins
from hpresil.config import Config

TIERS = ("quick", "continuous", "deep", "burnin")


def checks_for(cfg: Config) -> list[Check]:
    """Every built-in check, configured from ``cfg`` (less ``checks.disabled``)."""
    from hpresil.checks.ecc import EccCheck
    from hpresil.checks.gpu_presence import GpuPresenceCheck
    from hpresil.checks.xid import XidCheck

    gpu: list[Check] = [XidCheck(cfg.xid), GpuPresenceCheck(), EccCheck()]
    every = gpu + _dcgm_checks(cfg) + _host(cfg)[1]
    return [c for c in every if c.name not in cfg.checks.disabled]


def sources_for(cfg: Config, node: str) -> list[FactSource[Any]]:
    """The fact sources the configured quick and continuous checks read."""
    return _host(cfg)[0] + _dcgm_sources(cfg)


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
    from hpresil.adapters.dcgm import Dcgmi
    from hpresil.dcgm.sources import DcgmHealthSource

    return [
        DcgmHealthSource(
            Dcgmi.from_config(cfg.dcgm),
            interval_s=cfg.dcgm.health_interval_s,
            enable_watches=cfg.dcgm.enable_health_watches,
        )
    ]


def _host(cfg: Config) -> tuple[list[FactSource[Any]], list[Check]]:
    from hpresil.host.wiring import host_monitoring

    c = cfg.checks

    def on(name: str) -> bool:
        return name not in c.disabled

    return host_monitoring(
        ib=c.ib if on("ib") else None,
        mounts=c.mounts if on("mounts") else None,
        headroom=c.headroom if on("headroom") else None,
        processes=c.processes if on("processes") else None,
        services=c.services if on("services") else None,
    )


def registry_for(cfg: Config, *, tier: str | None = None, plugins: bool = True) -> Registry:
    """The configured checks (and installed plugins), optionally one tier's."""
    registry = Registry(checks_for(cfg))
    if plugins:
        load_plugins(registry)
    if tier is None:
        return registry
    return Registry(registry.select(tier))
