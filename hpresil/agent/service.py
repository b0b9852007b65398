"""The node agent daemon.

Per tick (every ``agent.poll_s``, and at once when the kernel-log watcher parses an
XID): collect a :class:`~hpresil.vocab.snapshot.Snapshot`, run the registered checks
(each under a timeout; a broken one yields UNKNOWN), spool a
:class:`~hpresil.vocab.Report` when anything is new, deliver it, and write the
latest verdict atomically to ``agent.cache_file`` for the Slurm hooks.

Reports carry all current results. Results of checks tagged "event" that name an
XID are events: they appear in the one report of the tick that saw them (delivery
is retried until acknowledged), never again; the verdict cache
(:mod:`hpresil.agent.verdict_cache`) lists them for a while under ``recent_events``,
apart from ``status`` (so that a Slurm hook does not drain again a node returned to
service after, say, a GPU reset).
Reports say what changed: a tick whose state (its non-event results and the GPUs,
named by :func:`~hpresil.vocab.state_digest`) is the last report's sends nothing; the
heartbeat (every ``agent.heartbeat_s``) always sends, but only the state's digest and
its faults (none on a healthy node: a few hundred bytes). When the controller answers
that it does not hold the state the digest names (``send_state``: it lost a report, or
was restored), the next tick sends the whole state again.

The kernel log is read from where the agent last stopped (:mod:`hpresil.kernlog.cursor`,
watched by :mod:`hpresil.agent.kernlog_watch`): an XID printed while it was down is
judged on start. The cursor on disk moves past an XID line only once the report
carrying its event is spooled, so none is judged twice.

Every report carries the Slurm jobs seen on the node at the latest tick
(:mod:`hpresil.agent.jobs`: progress, GPU use, newest checkpoint), so the controller
sees them at least every heartbeat. With ``jobs.kill_orphans`` the orphan reaper
(:mod:`hpresil.host.orphans`) looks at most every ``jobs.observe_s``, off the tick and
only while job processes run here (:mod:`hpresil.agent.reaping`); a kill is reported at
once with an "orphans" result, in that one report only. Work wanted at once (a tick for
a new XID, the delivery of a new report) is coalesced (:mod:`hpresil.agent.coalesce`).

systemd: ``Type=notify``; READY=1 once started, WATCHDOG=1 after every tick when
``WATCHDOG_USEC`` is set (so WatchdogSec must exceed ``agent.poll_s`` plus the GPU
query timeout), STOPPING=1 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler

from hpresil import __version__
from hpresil.adapters.gpu import GpuBackend
from hpresil.adapters.gpu.reopen import ReopeningBackend
from hpresil.agent.acks import Acknowledged
from hpresil.agent.coalesce import Coalesced, RunNow
from hpresil.agent.commands import Commands, Run, node_runs
from hpresil.agent.jobs import job_observations
from hpresil.agent.kernlog_watch import KernelLogWatch
from hpresil.agent.reaping import Reaping
from hpresil.agent.spool import ReportSink, Spool
from hpresil.agent.verdict_cache import VerdictCache
from hpresil.assembly import (
    agent_registry,
    jobs_source_for,
    process_table,
    sources_for,
    with_history,
)
from hpresil.checks.base import EVENT_TAG, CheckRunner, Registry
from hpresil.clock import utcnow
from hpresil.config import Config, expand
from hpresil.host.collector import Collector
from hpresil.host.slurm_jobs import LocalJobs
from hpresil.kernlog.sources import KernelLogSource
from hpresil.localcheck import MedianSource
from hpresil.systemd import sd_notify, watchdog_interval
from hpresil.vocab import CheckResult, GpuIdentity, JobObservation, Report, state_digest
from hpresil.vocab.snapshot import FactSource, Snapshot

if TYPE_CHECKING:
    from hpresil.host.orphans import OrphanReaper

log = logging.getLogger(__name__)


class Agent:
    """The agent's moving parts; adapters are swapped through the constructor."""

    def __init__(
        self,
        cfg: Config,
        node: str,
        client: ReportSink,
        *,
        backend: GpuBackend | None = None,
        source: KernelLogSource | None = None,
        registry: Registry | None = None,
        clock: Callable[[], datetime] = utcnow,
        on_tick: Callable[[], None] | None = None,
        jobs: FactSource[LocalJobs] | None = None,
        reaper: OrphanReaper | None = None,
        medians: MedianSource | None = None,  # the controller, for a burn-in's fleet figures
        runs: Mapping[str, Run] | None = None,  # what each command does (default: node_runs)
    ) -> None:
        agent = cfg.agent
        self.node, self._cfg, self._clock = node, agent, clock
        self._gpu_lock = threading.Lock()  # a tick's GPU reads; a GPU reset
        runs = runs if runs is not None else node_runs(cfg, node, clock, self._quiet, medians)
        self.commands = Commands(self._answer, runs, clock)
        self._client = Acknowledged(client, self._state_wanted, self.commands.offer)
        self._on_tick = on_tick
        self._backend, self._collector = _backend_and_collector(cfg, node, backend, jobs, clock)
        self._registry = registry if registry is not None else agent_registry(cfg)
        self._event_checks = {c.name for c in self._registry.select(EVENT_TAG)}
        self._runner = CheckRunner(self._registry)
        self._reaping = Reaping(cfg, node, reaper)
        self.spool = Spool(expand(agent.spool_dir, node))
        self._stop = threading.Event()
        self._now_pool = RunNow(self._stop)
        self._tick = Coalesced(self._tick_once)
        self._flush = Coalesced(self._flush_once)
        wake = partial(self._now_pool.request, self._tick)
        self._kernlog = KernelLogWatch(agent, node, self._stop, wake, clock, source)
        self._cache = VerdictCache(expand(agent.cache_file, node), node)
        self._state_lock = threading.Lock()
        self._current: tuple[CheckResult, ...] = ()  # latest non-event results
        self._gpus: tuple[GpuIdentity, ...] = ()
        self._jobs: tuple[JobObservation, ...] = ()  # as of the latest tick
        self._local_jobs: LocalJobs | None = None
        self._jobs_error: str | None = None
        self._digest = state_digest((), ())  # of the latest tick's state
        self._last_digest: str | None = None  # of the state last sent
        self._controller_down = False
        self._scheduler = BackgroundScheduler(timezone=UTC)

    # --- lifecycle ---
    def start(self) -> None:
        a = self._cfg
        common: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        self._scheduler.add_job(
            self._tick,
            "interval",
            seconds=a.poll_s,
            next_run_time=datetime.now(UTC),  # the scheduler runs on wall-clock time
            **common,
        )
        self._scheduler.add_job(self.heartbeat, "interval", seconds=a.heartbeat_s, **common)
        self._scheduler.add_job(self._flush, "interval", seconds=a.flush_s, **common)
        self._scheduler.start()
        self._kernlog.start()
        log.info(
            "agent for %s started: kernel log %s, GPU backend %s, checks %s",
            self.node,
            a.kernel_log.source,
            a.gpu.backend,
            ", ".join(self._registry.names()),
        )

    def stop(self) -> None:
        """Stop the watcher and the jobs, try one last delivery, release the GPUs."""
        self._stop.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        self._kernlog.join(timeout=5.0)
        self._now_pool.shutdown()
        self._flush_once()
        self._kernlog.commit()
        self._backend.close()
        totals = ", ".join(f"{n} {what}" for what, n in asdict(self.spool.totals).items())
        log.info(
            "agent for %s stopped; %d reports wait in the spool (since start: %s)",
            self.node,
            len(self.spool),
            totals,
        )

    def __enter__(self) -> Agent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- jobs ---
    def tick(self) -> None:
        """Run one tick now (coalesced with a tick already running)."""
        self._tick()

    def heartbeat(self) -> None:
        """The state's digest and its faults (to be judged again), nothing else."""
        with self._state_lock:
            faults = tuple(r for r in self._current if r.is_fault)
            digest = self._digest
        self._send(faults, (), digest, heartbeat=True)

    def flush(self) -> None:
        self._flush()

    def reap(self) -> None:
        """One look of the orphan reaper at the latest tick's job processes; kills are
        reported at once."""
        with self._state_lock:
            local = self._local_jobs
        kills = self._reaping.look(local)
        if kills:
            with self._state_lock:
                results, gpus, digest = self._current, self._gpus, self._digest
            self._send(results + tuple(kills), gpus, digest)

    def _tick_once(self) -> None:
        events = self._kernlog.drain()
        try:
            with self._gpu_lock:
                snapshot = self._collector.collect(events)
            results = self._runner.run(snapshot)
            self._after_checks(snapshot, results)
            self._kernlog.spooled(len(events))  # their report is spooled: read past them
        except Exception:  # a tick must never end the agent
            log.exception("tick failed; its XIDs wait for the next tick")
            self._kernlog.requeue(events)  # not spooled: judge them again next time
            self._state_wanted()  # and report the state then, changed or not
        if self._on_tick is not None:
            self._on_tick()

    def _after_checks(self, snapshot: Snapshot, results: list[CheckResult]) -> None:
        events = tuple(r for r in results if self._is_event(r))
        state = tuple(r for r in results if not self._is_event(r))
        gpus = tuple(g.identity for g in snapshot.gpus) or snapshot.known_gpus
        digest = state_digest(state, gpus)
        self._note_jobs_error(snapshot.fact_error(LocalJobs))
        local, jobs = snapshot.fact(LocalJobs), job_observations(snapshot)
        with self._state_lock:
            self._current, self._gpus, self._digest = state, gpus, digest
            self._local_jobs, self._jobs = local, jobs
            changed = digest != self._last_digest
            # the state once more at the next tick after events: it supersedes theirs
            self._last_digest = None if events else digest
        if events or changed:
            self._send(state + events, gpus, digest)
        self._cache.update(snapshot.taken_at, state, events, changed=changed)
        if self._reaping.due(local):
            self._now_pool.request(self.reap)

    def _is_event(self, result: CheckResult) -> bool:
        return result.check in self._event_checks and result.xid is not None

    def _note_jobs_error(self, error: str | None) -> None:
        """Log when the jobs source starts or stops failing (reports then carry no jobs:
        stale progress could make a running job look hung)."""
        if error is not None and self._jobs_error is None:
            log.warning("Slurm jobs on this node not observed: %s", error)
        elif error is None and self._jobs_error is not None:
            log.info("Slurm jobs on this node observed again")
        self._jobs_error = error

    def _state_wanted(self) -> None:
        """Send the whole state with the next tick, changed or not."""
        with self._state_lock:
            self._last_digest = None

    def _send(
        self,
        results: Sequence[CheckResult],
        gpus: Sequence[GpuIdentity],
        digest: str | None,
        *,
        heartbeat: bool = False,
        command: int | None = None,
    ) -> None:
        with self._state_lock:
            jobs = self._jobs
        report = Report(
            report_id=uuid.uuid4().hex,
            node=self.node,
            seq=self.spool.next_seq(),
            sent_at=self._clock(),
            agent_version=__version__,
            gpus=tuple(gpus),
            results=tuple(results),
            jobs=jobs,
            digest=digest,
            heartbeat=heartbeat,
            command=command,
        )
        self.spool.put(report)
        self._now_pool.request(self._flush)

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """The GPUs to themselves: the agent's handles closed (the next tick opens them
        again), no tick reading them meanwhile."""
        with self._gpu_lock:
            self._backend.close()
            yield

    def _answer(self, command: int, results: list[CheckResult]) -> None:
        """A command's results, as a report naming it (spooled, delivered as any; no
        digest: they are not the node's state)."""
        with self._state_lock:
            gpus = self._gpus
        self._send(results, gpus, None, command=command)
        log.info("command #%d answered: %d results", command, len(results))

    def _flush_once(self) -> None:
        try:
            outcome = self.spool.flush(self._client)
        except Exception:
            log.exception("report delivery failed")
            return
        if outcome.error and not self._controller_down:
            log.warning(
                "controller unavailable, %d reports spooled: %s", outcome.remaining, outcome.error
            )
        elif not outcome.error and self._controller_down:
            log.info("controller reachable again")
        self._controller_down = outcome.error is not None


def _backend_and_collector(
    cfg: Config,
    node: str,
    backend: GpuBackend | None,
    jobs: FactSource[LocalJobs] | None,
    clock: Callable[[], datetime],
) -> tuple[GpuBackend, Collector]:
    """The GPU backend (kept for the rate history) and the Collector over it, the host
    sources and the jobs (by default from ``cfg``)."""
    gpu, history = with_history(cfg, backend or ReopeningBackend(cfg.agent.gpu))
    table = process_table()  # one listing for the host checks and the jobs
    jobs = jobs if jobs is not None else jobs_source_for(cfg, node, table)
    sources = [*history, *sources_for(cfg, node, table=table), jobs]
    return gpu, Collector(node, gpu, cfg.agent.gpu.expected_count, clock, sources=sources)


# --- the process ---
def run_agent(cfg: Config, node: str) -> None:
    """Run the agent until SIGTERM or SIGINT, then stop gracefully."""
    from hpresil.client import ControllerClient

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    on_tick = _ping_watchdog if watchdog_interval() is not None else None
    try:
        with ControllerClient.for_node(cfg, node) as client:  # signs with node's key
            agent = Agent(cfg, node, client, on_tick=on_tick, medians=client)
            agent.start()
            sd_notify("READY=1")
            try:
                while not stop.wait(1.0):
                    pass
            finally:
                sd_notify("STOPPING=1")
                agent.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ping_watchdog() -> None:
    sd_notify("WATCHDOG=1")


__all__ = ["Agent", "run_agent"]
