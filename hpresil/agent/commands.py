"""The controller's commands to this node's agent: the recovery ladder's steps that
run on the node (:mod:`hpresil.controller.commands`), a GPU reset and a burn-in.

They come in the answers to the agent's reports (``ReportAck.commands``), already
signed and checked as those are. Each id runs once, on a worker thread of its own
(a burn-in takes minutes; ticks and heartbeats go on), one command at a time, in the
order given; the results go back as a report naming the command, through the spool
like every report, so they reach the controller whatever restarts in between. An
agent that restarted before it answered is given the command again and runs it again.

A reset runs with the agent's GPU handles closed (nvidia-smi refuses a reset while a
monitoring client has the GPU open) and ticks held off until it is done.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from hpresil.adapters.gpu.reset import CHECK as RESET
from hpresil.adapters.gpu.reset import reset
from hpresil.api import NodeCommand
from hpresil.config import Config
from hpresil.localcheck import MedianSource, run_burnin_tier
from hpresil.vocab import CheckResult, Status

log = logging.getLogger(__name__)

SEEN_MAX = 256  # command ids remembered (each is run once)
QUEUE_MAX = 16  # commands waiting to run; more are left for the controller to give again

Run = Callable[[NodeCommand], list[CheckResult]]
Send = Callable[[int, list[CheckResult]], None]


class Commands:
    """Runs the commands given, one at a time, and sends each one's results."""

    def __init__(
        self,
        send: Send,
        runs: Mapping[str, Run],
        clock: Callable[[], datetime],
    ) -> None:
        self._send, self._runs, self._clock = send, dict(runs), clock
        self._lock = threading.Lock()
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._queue: deque[NodeCommand] = deque()
        self._worker: threading.Thread | None = None

    def offer(self, commands: Sequence[NodeCommand]) -> None:
        """Queue the commands not seen before; start the worker if it is idle."""
        with self._lock:
            for command in commands:
                if command.id in self._seen or len(self._queue) >= QUEUE_MAX:
                    continue
                self._seen[command.id] = None
                while len(self._seen) > SEEN_MAX:
                    self._seen.popitem(last=False)
                self._queue.append(command)
                log.info("command #%d from the controller: %s", command.id, command.kind)
            if self._queue and (self._worker is None or not self._worker.is_alive()):
                self._worker = threading.Thread(
                    target=self._drain, name="hpresil-command", daemon=True
                )
                self._worker.start()

    def join(self, timeout: float | None = None) -> None:
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    return
                command = self._queue.popleft()
            self._send(command.id, self._run(command))

    def _run(self, command: NodeCommand) -> list[CheckResult]:
        run = self._runs.get(command.kind)
        try:
            if run is None:
                raise ValueError(f"this agent does not know the command {command.kind!r}")
            return run(command)
        except Exception as exc:  # a command must never end the agent: its answer says why
            log.exception("command #%d (%s) failed", command.id, command.kind)
            check = RESET if command.kind == "reset_gpu" else "burnin"
            why = f"{command.kind} could not run: {exc}"[:500]
            return [
                CheckResult(
                    check=check, status=Status.UNKNOWN, summary=why, observed_at=self._clock()
                )
            ]


def node_runs(
    cfg: Config,
    node: str,
    clock: Callable[[], datetime],
    quiet: Callable[[], AbstractContextManager[object]],
    medians: MedianSource | None = None,
) -> dict[str, Run]:
    """What each command does on this node. ``quiet``: the agent's GPU handles closed
    and its ticks held off, for as long as it is entered."""
    gpu = cfg.agent.gpu

    def reset_gpus(command: NodeCommand) -> list[CheckResult]:
        with quiet():
            outcomes = reset(command.gpus, binary=gpu.smi_binary, timeout_s=gpu.reset_timeout_s)
        return [
            CheckResult(
                check=RESET,
                status=Status.OK if o.done else Status.FAIL,
                summary=f"GPU {o.target}: {o.message}"[:500],
                evidence={"target": o.target},
                observed_at=clock(),
            )
            for o in outcomes
        ]

    def burnin(command: NodeCommand) -> list[CheckResult]:
        return run_burnin_tier(cfg, node, medians)

    return {"reset_gpu": reset_gpus, "burnin": burnin}
