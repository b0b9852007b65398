"""Running a tier of checks once, locally, outside the agent (``hpresil check``).

Event checks (XIDs from the kernel log) are left out: the agent reports those as they
happen; a one-off check has no event stream to judge."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from hpresil.adapters.gpu import open_backend
from hpresil.assembly import registry_for, sources_for, with_history
from hpresil.checks.base import EVENT_TAG, CheckRunner, Registry, unknown
from hpresil.config import Config
from hpresil.errors import HpresilError
from hpresil.host.collector import Collector
from hpresil.vocab import CheckResult, GpuIdentity

if TYPE_CHECKING:
    from hpresil.api import BurninMedianView
    from hpresil.burnin.run import FleetMedians
    from hpresil.config.burnin import BurninConfig

log = logging.getLogger(__name__)


def run_tier(cfg: Config, node: str, tier: str) -> list[CheckResult]:
    """Collect one snapshot and run the tier's checks on it. A GPU backend that cannot
    start is one UNKNOWN result (the node could not be checked), not an error. The
    deep tier runs the DCGM diagnostic, on an idle node only."""
    if tier == "deep":
        return run_deep_tier(cfg, node)
    if tier == "burnin":
        return run_burnin_tier(cfg, node)
    registry = Registry(c for c in registry_for(cfg, tier=tier) if EVENT_TAG not in c.tags)
    try:
        backend = open_backend(cfg.agent.gpu)
    except HpresilError as exc:
        from hpresil.clock import utcnow

        return [unknown("gpu_backend", str(exc), utcnow())]
    try:
        recorder, history = with_history(cfg, backend)
        collector = Collector(
            node,
            recorder,
            cfg.agent.gpu.expected_count,
            sources=[*history, *sources_for(cfg, node)],
        )
        return CheckRunner(registry).run(collector.collect())
    finally:
        backend.close()


def run_deep_tier(cfg: Config, node: str) -> list[CheckResult]:
    from hpresil.checks.dcgm_diag import run_deep
    from hpresil.dcgm.dcgmi import Dcgmi

    if not cfg.dcgm.enabled:
        from hpresil.clock import utcnow

        return [unknown("dcgm_diag", "DCGM is disabled in the configuration", utcnow())]
    return run_deep(
        Dcgmi.from_config(cfg.dcgm),
        cfg.dcgm.diag_level,
        lambda: node_is_idle(cfg, node),
        iterations=cfg.dcgm.diag_iterations,
    )


def node_is_idle(cfg: Config, node: str) -> bool:
    """No job running on ``node`` according to Slurm; not idle when Slurm cannot say
    (a diagnostic must never run under someone's job)."""
    from hpresil.adapters.slurm import Slurm

    try:
        jobs = Slurm.from_config(cfg.slurm).jobs(node=node)
    except HpresilError:
        return False
    return not any(j.running for j in jobs)


def run_burnin_tier(
    cfg: Config, node: str, medians: MedianSource | None = None
) -> list[CheckResult]:
    """The burn-in on this node's GPUs, judged against expected figures and, when
    ``medians`` (the controller) answers, the fleet's medians."""
    from hpresil.burnin.run import run_burnin

    try:
        backend = open_backend(cfg.agent.gpu)
        try:
            gpus = [g.identity for g in backend.devices()]
        finally:
            backend.close()
    except HpresilError:
        gpus = []
    median = None if medians is None else fleet_medians(medians, gpus, cfg.burnin)
    return run_burnin(cfg.burnin, gpus, median, progress=False) + burnin_dcgm(cfg, node)


class MedianSource(Protocol):
    """The controller, as the burn-in asks it for the fleet's figures."""

    def burnin_median(
        self, model: str, dtype: str | None = None, size: int | None = None
    ) -> BurninMedianView: ...


def fleet_medians(
    source: MedianSource,
    gpus: Sequence[GpuIdentity],
    settings: BurninConfig,
    note: Callable[[str], None] = log.info,
) -> FleetMedians | None:
    """The fleet's median figures for each GPU model of ``gpus``; None when the
    controller does not answer (the figures are then judged against expected ones),
    and ``note`` is told why."""
    medians: dict[str, dict[str, float]] = {}
    for name in sorted({g.name for g in gpus if g.name}):
        try:
            view = source.burnin_median(name, settings.dtype, settings.matmul_size)
        except HpresilError as exc:
            note(f"no fleet median ({exc})")
            return None
        medians[name] = {metric: m.median for metric, m in view.metrics.items()}
    return medians


def burnin_dcgm(cfg: Config, node: str) -> list[CheckResult]:
    """DCGM's stress-level diagnostic as part of a burn-in, where dcgmi is installed
    (idle nodes only, like the deep tier)."""
    import shutil

    level = cfg.burnin.dcgm_level
    if level is None or not cfg.dcgm.enabled or shutil.which(cfg.dcgm.binary) is None:
        return []
    from hpresil.checks.dcgm_diag import run_deep
    from hpresil.dcgm.dcgmi import Dcgmi

    return run_deep(Dcgmi.from_config(cfg.dcgm), level, lambda: node_is_idle(cfg, node))
