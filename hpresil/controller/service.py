"""``hpresil controller``: the long-running service.

Migrates the database, starts the remediation executor and the reconcile loop,
then serves the API with uvicorn until SIGTERM or SIGINT, and stops the threads.
Under systemd (``Type=notify``) it sends ``READY=1`` once listening and
``WATCHDOG=1`` every half ``WATCHDOG_USEC`` while its threads are alive.
"""

from __future__ import annotations

import logging
import os
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
from hpresil.controller.reconcile import Periodic, Reconciler
from hpresil.controller.remediation import Executor
from hpresil.controller.tls import server_tls
from hpresil.controller.topology import Fabric
from hpresil.errors import SlurmError, SlurmParseError
from hpresil.store import Store
from hpresil.systemd import sd_notify, watchdog_interval

log = logging.getLogger(__name__)


def run_controller(cfg: Config) -> None:
    """Run until SIGTERM or SIGINT; raise :class:`HpresilError` for a bad setup."""
    tls = server_tls(cfg.controller)  # before anything starts: a bad setup is one line
    token = read_token(Path(cfg.controller.token_file))
    assert token is not None  # required=True
    store = Store.open(cfg.controller.database)
    store.migrate()
    slurm = Slurm.from_config(cfg.slurm, cfg.policy.reason_prefix)
    executor = Executor(store, slurm, cfg.policy, jobs=cfg.jobs, clock=utcnow)
    # the racks' host lists are checked here; Slurm's switches are read by the
    # reconcile loop (at once, then every topology.refresh_s), never in a report's way
    fabric = Fabric(cfg.topology, cfg.slurm)
    reconciler = Reconciler(
        store, slurm, cfg.controller, clock=utcnow, wake=executor.wake, policy=cfg.policy
    )
    watch = JobWatch(
        store,
        slurm,
        cfg.jobs,
        clock=utcnow,
        wake=executor.wake,
        fresh_s=cfg.controller.stale_after_s,
    )

    def reconcile() -> None:
        """Both passes read one job listing: one squeue per interval, not two."""
        fabric.refresh(force=False)
        try:
            jobs = slurm.jobs(active_only=False)
        except (SlurmError, SlurmParseError) as exc:
            log.warning("reconcile: slurm did not list its jobs: %s", exc)
            reconciler.run_once()  # nodes and pruning still; the job watch waits
            return
        reconciler.run_once(jobs)
        watch.run_once(jobs)

    loop = Periodic(cfg.controller.reconcile_interval_s, reconcile, "hpresil-reconcile")
    app = create_app(
        store=store, slurm=slurm, config=cfg, token=token, wake=executor.wake, fabric=fabric
    )
    server = _server(app, cfg, tls)
    _stop_on_signals(server)
    notifier = Notifier(server, lambda: executor.alive and loop.alive)
    executor.start()
    loop.start()
    notifier.start()
    try:
        server.run()
    finally:
        sd_notify("STOPPING=1")
        notifier.stop()
        loop.stop()
        executor.stop()
        store.close()
        log.info("controller stopped")


def _server(app: Any, cfg: Config, tls: dict[str, Any]) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(
            app,
            host=cfg.controller.listen_host,
            port=cfg.controller.listen_port,
            log_config=None,
            access_log=False,
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
