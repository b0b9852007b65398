"""``hpresil controller``: the long-running service.

Migrates the database, serves the API with uvicorn until SIGTERM or SIGINT, and, while
it leads (:mod:`hpresil.controller.leader`: one replica among those sharing the
database), runs the remediation executor and the reconcile loop (:class:`Duties`).
A follower serves the API and takes reports; the actions they queue wait in the
database for the leader, which a NOTIFY wakes at once (PostgreSQL).
Under systemd (``Type=notify``) it sends ``READY=1`` once listening and
``WATCHDOG=1`` every half ``WATCHDOG_USEC`` while its threads are alive.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from hpresil.adapters.slurm import Slurm
from hpresil.auth import read_token
from hpresil.clock import utcnow
from hpresil.config import Config
from hpresil.controller.app import create_app
from hpresil.controller.jobs.watch import JobWatch
from hpresil.controller.leader import Leader
from hpresil.controller.reconcile import Periodic, Reconciler
from hpresil.controller.recovery import Ladder
from hpresil.controller.remediation import Executor
from hpresil.controller.tls import server_tls
from hpresil.controller.topology import Fabric
from hpresil.errors import SlurmError, SlurmParseError
from hpresil.store import Store
from hpresil.store.leader_lock import leader_lock, nudge
from hpresil.systemd import sd_notify, watchdog_interval

log = logging.getLogger(__name__)


def run_controller(cfg: Config) -> None:
    """Run until SIGTERM or SIGINT; raise :class:`HpresilError` for a bad setup."""
    tls = server_tls(cfg.controller)  # before anything starts: a bad setup is one line
    _open_files_to_hard_limit()  # each agent keeps a connection (controller.keepalive_s)
    token = read_token(Path(cfg.controller.token_file))
    assert token is not None  # required=True
    store = Store.open(cfg.controller.database)
    store.migrate()
    slurm = Slurm.from_config(cfg.slurm, cfg.policy.reason_prefix)
    # the racks' host lists are checked here; Slurm's switches are read by the
    # reconcile loop (at once, then every topology.refresh_s), never in a report's way
    fabric = Fabric(cfg.topology, cfg.slurm)
    duties = Duties(cfg, store, slurm, fabric, leads=lambda: leader.confirm())
    lock = leader_lock(store, notified=duties.wake_here)
    leader = Leader(lock, duties, cfg.controller.leader_check_s)
    app = create_app(
        store=store, slurm=slurm, config=cfg, token=token, wake=duties.wake, fabric=fabric
    )
    app.state.leads = lambda: leader.leading  # GET /healthz says it
    server = _server(app, cfg, tls)
    _stop_on_signals(server)
    notifier = Notifier(server, lambda: leader.alive)
    leader.start()
    notifier.start()
    try:
        server.run()
    finally:
        sd_notify("STOPPING=1")
        notifier.stop()
        leader.stop()  # the duties first, then the lock
        store.close()
        log.info("controller stopped")


class Duties:
    """What only the leader runs, started afresh each time it leads: the remediation
    executor and the reconcile loop, whose pass lists Slurm's jobs once for the
    reconciler and the job watch. Both ask ``leads`` before they act."""

    def __init__(
        self, cfg: Config, store: Store, slurm: Slurm, fabric: Fabric, leads: Callable[[], bool]
    ) -> None:
        self._cfg = cfg
        self._store = store
        self._slurm = slurm
        self._fabric = fabric
        self._leads = leads
        self._executor: Executor | None = None
        self._loop: Periodic | None = None
        self._reconciler = Reconciler(
            store, slurm, cfg.controller, clock=utcnow, wake=self.wake_here, policy=cfg.policy
        )
        self._watch = JobWatch(
            store,
            slurm,
            cfg.jobs,
            clock=utcnow,
            wake=self.wake_here,
            fresh_s=cfg.controller.stale_after_s,
        )
        self._ladder = Ladder(store, slurm, cfg.recovery, utcnow, wake=self.wake_here)

    def start(self) -> None:
        cfg = self._cfg
        self._executor = Executor(
            self._store,
            self._slurm,
            cfg.policy,
            jobs=cfg.jobs,
            clock=utcnow,
            leads=self._leads,
            recovery=cfg.recovery,
        )
        interval = cfg.controller.reconcile_interval_s
        share = cfg.controller.reconcile_max_share
        self._loop = Periodic(interval, self._reconcile, "hpresil-reconcile", share=share)
        self._executor.start()
        self._loop.start()

    def stop(self) -> None:
        for part in (self._loop, self._executor):
            if part is not None:
                part.stop()

    @property
    def stopped(self) -> bool:
        return not any(p is not None and p.alive for p in (self._loop, self._executor))

    @property
    def alive(self) -> bool:
        return all(p is not None and p.alive for p in (self._loop, self._executor))

    def wake(self) -> None:
        """The API queued an action: this replica's executor runs it, or the leader's."""
        if self._executor is not None and self._executor.alive:
            self._executor.wake()
        else:
            nudge(self._store)

    def wake_here(self) -> None:
        if self._executor is not None:
            self._executor.wake()

    def _reconcile(self) -> None:
        if not self._leads():
            return
        self._fabric.refresh(force=False)
        try:
            jobs = self._slurm.jobs(active_only=False)
        except (SlurmError, SlurmParseError) as exc:
            log.warning("reconcile: slurm did not list its jobs: %s", exc)
            self._reconciler.run_once()  # nodes and pruning still; the job watch waits
            return
        self._reconciler.run_once(jobs)
        self._watch.run_once(jobs)
        self._ladder.run_once(jobs)


def _open_files_to_hard_limit() -> None:
    """The soft limit on open files raised to the hard one (as Go's runtime does):
    systemd starts services at 1,024, fewer than the agents that keep a connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or hard == resource.RLIM_INFINITY:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError) as exc:
        log.warning("open files: soft limit %d kept: %s", soft, exc)
        return
    log.info("open files: soft limit %d raised to %d", soft, hard)


def _server(app: Any, cfg: Config, tls: dict[str, Any]) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(
            app,
            host=cfg.controller.listen_host,
            port=cfg.controller.listen_port,
            log_config=None,
            access_log=False,
            timeout_keep_alive=cfg.controller.keepalive_s,
            **tls,
        )
    )


def _stop_on_signals(server: uvicorn.Server) -> None:
    """uvicorn replaces these while it serves and re-raises the signal after its own
    graceful shutdown; ours then only asks for the exit that is under way. Signals
    belong to the main thread: elsewhere (an embedding program) nothing is set."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        server.should_exit = True

    if threading.current_thread() is not threading.main_thread():
        return

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


class Notifier:
    """Tells systemd when the API listens, then pets its watchdog while healthy."""

    def __init__(self, server: uvicorn.Server, healthy: Callable[[], bool]) -> None:
        self._server = server
        self._healthy = healthy
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hpresil-notify", daemon=True)

    def start(self) -> None:
        if os.environ.get("NOTIFY_SOCKET"):
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._server.started:
            if self._stop.wait(0.05):
                return
        sd_notify("READY=1")
        interval = watchdog_interval()
        if interval is None:
            return
        while not self._stop.wait(interval):
            if self._healthy():
                sd_notify("WATCHDOG=1")
            else:
                log.error("a controller thread died: not petting the systemd watchdog")
