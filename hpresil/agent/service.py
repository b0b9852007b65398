"""The node agent daemon.

Per tick (every ``agent.poll_s``, and at once when the kernel-log watcher parses an
XID): collect a :class:`~hpresil.vocab.snapshot.Snapshot`, run the registered checks
(each under a timeout; a broken one yields UNKNOWN), spool a
:class:`~hpresil.vocab.Report` when anything is new, deliver it, and write the
latest verdict atomically to ``agent.cache_file`` for the Slurm hooks.

Reports carry all current results. Results of checks tagged "event" that name an
XID are events: they appear in the one report of the tick that saw them (delivery
is retried until acknowledged), never again; the verdict cache lists them for
``EVENT_HOLD_S`` under ``recent_events``, apart from ``status`` (so that a Slurm
hook does not drain again a node returned to service after, say, a GPU reset).
A tick whose results equal the last report's sends nothing; the heartbeat (every
``agent.heartbeat_s``) always does.

The kernel log is read from where the agent last stopped (:mod:`hpresil.kernlog.cursor`):
an XID printed while it was down is judged on start. The cursor on disk moves past an
XID line only once the report carrying its event is spooled, so none is judged twice.

Every report carries the Slurm jobs seen on the node at the latest tick
(:mod:`hpresil.agent.jobs`: progress, GPU use, newest checkpoint), so the controller
sees them at least every heartbeat. With ``jobs.kill_orphans`` the orphan reaper
(:mod:`hpresil.host.orphans`) looks at most every ``jobs.observe_s``, off the tick and only
while job processes run here; a kill is reported at
once with an "orphans" result, in that one report only.

systemd: ``Type=notify``; READY=1 once started, WATCHDOG=1 after every tick when
``WATCHDOG_USEC`` is set (so WatchdogSec must exceed ``agent.poll_s`` plus the GPU
query timeout), STOPPING=1 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler

from hpresil import __version__
from hpresil.adapters.gpu import GpuBackend, open_backend
from hpresil.agent.jobs import job_observations
from hpresil.agent.spool import ReportSink, Spool
from hpresil.assembly import (
    agent_registry,
    jobs_source_for,
    process_table,
    reaper_for,
    sources_for,
    with_history,
)
from hpresil.checks.base import EVENT_TAG, CheckRunner, Registry
from hpresil.clock import utcnow
from hpresil.config import AgentConfig, Config, GpuConfig, expand
from hpresil.fsutil import atomic_write
from hpresil.host.collector import Collector
from hpresil.host.slurm_jobs import LocalJobs
from hpresil.vocab.gpu import GpuSample
from hpresil.vocab.snapshot import FactSource, Snapshot

if TYPE_CHECKING:
    from hpresil.host.orphans import OrphanReaper
from hpresil.kernlog.cursor import CursorFile, CursorKeeper
from hpresil.kernlog.parse import LineParser
from hpresil.kernlog.sources import KernelLogSource, follow_forever, open_source
from hpresil.systemd import sd_notify, watchdog_interval
from hpresil.vocab import (
    Action,
    CheckResult,
    GpuIdentity,
    JobObservation,
    Report,
    Status,
    XidEvent,
)

log = logging.getLogger(__name__)

CACHE_REFRESH_S = 30.0  # the hooks trust a verdict for hooks.fresh_s (120 s by default)

EVENT_HOLD_S = 600.0  # how long the verdict cache lists an event


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
    ) -> None:
        agent = cfg.agent
        self.node = node
        self._cfg = agent
        self._client = client
        self._clock = clock
        self._on_tick = on_tick
        self._backend, history = with_history(cfg, backend or _ReopeningBackend(agent.gpu))
        self._registry = registry if registry is not None else agent_registry(cfg)
        self._event_checks = {c.name for c in self._registry.select(EVENT_TAG)}
        table = process_table()  # one listing for the host checks and the jobs
        jobs = jobs if jobs is not None else jobs_source_for(cfg, node, table)
        self._collector = Collector(
            node,
            self._backend,
            agent.gpu.expected_count,
            clock,
            sources=[*history, *sources_for(cfg, node, table=table), jobs],
        )
        # made on first need (job processes here): an idle node never loads it
        self._reaper = reaper
        self._make_reaper = (lambda: reaper_for(cfg, node)) if reaper is None else None
        self._reaped_at = time.monotonic()  # the reaper's last look (first: observe_s in)
        self._reaping = threading.Lock()  # one look at a time
        self._observe_s = cfg.jobs.observe_s
        self._runner = CheckRunner(self._registry)
        self.spool = Spool(expand(agent.spool_dir, node))
        self._source = source or open_source(agent.kernel_log, node)
        cursor_file = CursorFile(cursor_path(agent, node), max_age_s=agent.kernel_log.resume_max_s)
        self._resume_from = cursor_file.load()  # None: the kernel log is read from its end
        self._cursor = CursorKeeper(cursor_file, self._resume_from)
        self._cache_file = expand(agent.cache_file, node)
        self._events: queue.SimpleQueue[XidEvent] = queue.SimpleQueue()
        self._parser = LineParser()
        self._stop = threading.Event()
        self._state_lock = threading.Lock()
        self._current: tuple[CheckResult, ...] = ()  # latest non-event results
        self._gpus: tuple[GpuIdentity, ...] = ()
        self._jobs: tuple[JobObservation, ...] = ()  # as of the latest tick
        self._local_jobs: LocalJobs | None = None
        self._jobs_error: str | None = None
        self._last_key: frozenset[Hashable] | None = None
        self._cache_written = float("-inf")  # monotonic time of the last cache write
        self._recent: deque[tuple[float, CheckResult]] = deque()
        self._controller_down = False
        self._tick = _Coalesced(self._tick_once)
        self._flush = _Coalesced(self._flush_once)
        self._scheduler = BackgroundScheduler(timezone=UTC)
        # Work wanted at once (a tick for a new XID, delivery of a new report) runs here,
        # not as one-off scheduler jobs: APScheduler 3 can fail removing a finished
        # one-off job while it shuts down.
        self._now_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hpresil-now")
        self._watcher = threading.Thread(target=self._watch, name="kernel-log", daemon=True)

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
        self._watcher.start()
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
        if self._watcher.is_alive():
            self._watcher.join(timeout=5.0)
        self._now_pool.shutdown(wait=True)
        self._flush_once()
        self._cursor.commit()
        self._backend.close()
        log.info("agent for %s stopped; %d reports wait in the spool", self.node, len(self.spool))

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
        with self._state_lock:
            results, gpus = self._current, self._gpus
        self._send(results, gpus)

    def flush(self) -> None:
        self._flush()

    def reap(self) -> None:
        """One look of the orphan reaper at the latest tick's job processes; kills are
        reported at once."""
        if self._reaper is None or not self._reaping.acquire(blocking=False):
            return  # none, or a look (waiting on Slurm) is still under way
        try:
            with self._state_lock:
                local = self._local_jobs
            if local is None:
                return  # not collected this tick: no look without knowing what runs here
            kills = self._reaper.look(local.processes())
        finally:
            self._reaping.release()
        if kills:
            with self._state_lock:
                results, gpus = self._current, self._gpus
            self._send(results + tuple(kills), gpus)

    def _tick_once(self) -> None:
        events = _drain(self._events)
        try:
            snapshot = self._collector.collect(events)
            results = self._runner.run(snapshot)
            self._after_checks(snapshot, results)
            self._cursor.spooled(len(events))  # their report is spooled: read past them
            self._cursor.commit()
        except Exception:  # a tick must never end the agent
            log.exception("tick failed; its XIDs wait for the next tick")
            for event in events:  # not spooled: judge them again next time
                self._events.put(event)
            with self._state_lock:
                self._last_key = None  # and report the state then, changed or not
        if self._on_tick is not None:
            self._on_tick()

    def _after_checks(self, snapshot: Snapshot, results: list[CheckResult]) -> None:
        events = tuple(r for r in results if self._is_event(r))
        state = tuple(r for r in results if not self._is_event(r))
        gpus = tuple(g.identity for g in snapshot.gpus) or snapshot.known_gpus
        key = frozenset(_key(r) for r in state)
        self._note_jobs_error(snapshot.fact_error(LocalJobs))
        local, jobs = snapshot.fact(LocalJobs), job_observations(snapshot)
        with self._state_lock:
            self._current, self._gpus = state, gpus
            self._local_jobs, self._jobs = local, jobs
            changed = key != self._last_key
            self._last_key = key
            now = time.monotonic()
            self._recent.extend((now, e) for e in events)
            while self._recent and now - self._recent[0][0] > EVENT_HOLD_S:
                self._recent.popleft()
            recent = tuple(e for _, e in self._recent)
        if events or changed:
            self._send(state + events, gpus)
        self._refresh_cache(snapshot.taken_at, state, recent, changed or bool(events))
        self._reap_when_due(local)

    def _reap_when_due(self, local: LocalJobs | None) -> None:
        """The reaper looks every ``jobs.observe_s``, off the tick (it may ask Slurm),
        and only when job processes run here: an idle node never asks."""
        if local is None or not local.jobs:
            return
        if self._reaper is None and self._make_reaper is not None:
            self._reaper, self._make_reaper = self._make_reaper(), None
        if self._reaper is None:
            return
        now = time.monotonic()
        if now - self._reaped_at < self._observe_s:
            return
        self._reaped_at = now
        self._request(self.reap)

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

    def _send(self, results: Sequence[CheckResult], gpus: Sequence[GpuIdentity]) -> None:
        with self._state_lock:
            jobs = self._jobs
        report = Report(
            report_id=uuid.uuid4().hex,
            node=self.node,
            seq=self.spool.next_seq(),
            sent_at=self._now(),
            agent_version=__version__,
            gpus=tuple(gpus),
            results=tuple(results),
            jobs=jobs,
        )
        self.spool.put(report)
        self._request(self._flush)

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

    # --- kernel log ---
    def _watch(self) -> None:
        for line in follow_forever(self._source, self._stop, after=self._resume_from):
            event = None if line.text is None else self._parser.feed(line.text, self._now())
            self._cursor.read(line, event=event is not None)  # before the tick can drain it
            if event is None:
                continue
            log.info("XID %d on %s: %s", event.xid, event.pci_bus_id, event.message)
            self._events.put(event)
            self._request(self._tick)

    def _request(self, job: Callable[[], None]) -> None:
        """Run ``job`` now, on a worker thread (not the caller's)."""
        if self._stop.is_set():
            return
        try:
            self._now_pool.submit(job)
        except RuntimeError:  # stopping: the pool no longer takes work
            log.debug("stopping: %s not run", getattr(job, "__name__", job))

    # --- verdict cache ---
    def _refresh_cache(
        self,
        at: datetime,
        results: Sequence[CheckResult],
        recent: Sequence[CheckResult],
        changed: bool,
    ) -> None:
        """Rewrite the verdict cache when the verdict changed, else often enough to stay
        fresh for the hooks (every CACHE_REFRESH_S): encoding ~100 results each tick
        was the largest CPU cost of an idle agent."""
        now = time.monotonic()
        if changed or now - self._cache_written >= CACHE_REFRESH_S:
            self._write_cache(at, results, recent)
            self._cache_written = now

    def _write_cache(
        self, at: datetime, results: Sequence[CheckResult], recent: Sequence[CheckResult]
    ) -> None:
        verdict = {
            "node": self.node,
            "at": at.isoformat(),
            "status": Status.worst(r.status for r in results).value,
            "action": Action.worst(r.action for r in results).value,
            "results": [r.model_dump(mode="json") for r in results],
            "recent_events": [r.model_dump(mode="json") for r in recent],
        }
        try:
            atomic_write(self._cache_file, json.dumps(verdict) + "\n", sync=False)
        except OSError as exc:
            log.warning("cannot write verdict cache %s: %s", self._cache_file, exc)

    def _now(self) -> datetime:
        return self._clock()


def cursor_path(cfg: AgentConfig, node: str) -> Path:
    """``kernel_log.cursor_file``, by default ``kernlog.cursor`` in the spool directory."""
    if cfg.kernel_log.cursor_file:
        return expand(cfg.kernel_log.cursor_file, node)
    return expand(cfg.spool_dir, node) / "kernlog.cursor"


def _key(r: CheckResult) -> Hashable:
    return (r.check, r.status, r.action, r.category, r.gpu.index if r.gpu else None, r.summary)


def _drain(q: queue.SimpleQueue[XidEvent]) -> list[XidEvent]:
    items = []
    with contextlib.suppress(queue.Empty):
        while True:
            items.append(q.get_nowait())
    return items


class _Coalesced:
    """Calls ``fn`` now unless a call is running, in which case that call runs
    ``fn`` once more when it finishes: requests are never lost, never stacked."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self._fn = fn
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self.__name__ = getattr(fn, "__name__", "job")

    def __call__(self) -> None:
        self._wanted.set()
        while self._wanted.is_set() and self._lock.acquire(blocking=False):
            try:
                while self._wanted.is_set():
                    self._wanted.clear()
                    self._fn()
            finally:
                self._lock.release()


class _ReopeningBackend:
    """The configured GPU backend, opened on first use and again after it failed to
    open (the driver may load after the agent starts)."""

    def __init__(self, cfg: GpuConfig) -> None:
        self._cfg = cfg
        self._backend: GpuBackend | None = None

    def devices(self) -> list[GpuSample]:
        if self._backend is None:
            self._backend = open_backend(self._cfg)  # GpuError if it cannot
        return self._backend.devices()

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


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
        with ControllerClient.from_config(cfg) as client:
            agent = Agent(cfg, node, client, on_tick=on_tick)
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
