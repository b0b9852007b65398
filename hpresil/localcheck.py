"""Running a tier of checks once, locally, outside the agent (``hpresil check``).

Event checks (XIDs from the kernel log) are left out: the agent reports those as they
happen; a one-off check has no event stream to judge."""

from __future__ import annotations

from hpresil.adapters.gpu import open_backend
from hpresil.assembly import registry_for, sources_for, with_history
from hpresil.checks.base import EVENT_TAG, CheckRunner, Registry, unknown
from hpresil.config import Config
from hpresil.errors import HpresilError
from hpresil.host.collector import Collector
from hpresil.vocab import CheckResult


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


def run_burnin_tier(cfg: Config, node: str) -> list[CheckResult]:
    """The burn-in on this node's GPUs, judged against expected figures (offline: the
    fleet median needs ``hpresil burnin``, which asks the controller)."""
    from hpresil.burnin.run import run_burnin

    try:
        backend = open_backend(cfg.agent.gpu)
        try:
            gpus = [g.identity for g in backend.devices()]
        finally:
            backend.close()
    except HpresilError:
        gpus = []
    return run_burnin(cfg.burnin, gpus, None, progress=False) + burnin_dcgm(cfg, node)


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
