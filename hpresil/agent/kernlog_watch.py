"""The agent's kernel-log watcher: XIDs as they are printed, from where it last stopped.

A thread follows the configured source (:mod:`hpresil.kernlog.sources`) from the saved
cursor (:mod:`hpresil.kernlog.cursor`), parses each line, queues the XID events and
wakes the agent for a tick. A tick :meth:`KernelLogWatch.drain` s the queue; once the
report carrying those events is spooled it calls :meth:`KernelLogWatch.spooled`, and
only then does the cursor on disk move past their lines, so none is judged twice. A
tick that fails puts its events back (:meth:`KernelLogWatch.requeue`).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from hpresil.config import AgentConfig, expand
from hpresil.kernlog.cursor import CursorFile, CursorKeeper
from hpresil.kernlog.parse import LineParser
from hpresil.kernlog.sources import KernelLogSource, follow_forever, open_source
from hpresil.vocab import XidEvent

log = logging.getLogger(__name__)


class KernelLogWatch:
    """The watcher thread, its event queue and the cursor it keeps.

    ``wake`` is called (on the watcher thread) after each XID is queued; the watcher
    ends when ``stop`` is set.
    """

    def __init__(
        self,
        cfg: AgentConfig,
        node: str,
        stop: threading.Event,
        wake: Callable[[], None],
        clock: Callable[[], datetime],
        source: KernelLogSource | None = None,
    ) -> None:
        self._source = source or open_source(cfg.kernel_log, node)
        cursor_file = CursorFile(cursor_path(cfg, node), max_age_s=cfg.kernel_log.resume_max_s)
        self._resume_from = cursor_file.load()  # None: the kernel log is read from its end
        self._cursor = CursorKeeper(cursor_file, self._resume_from)
        self._events: queue.SimpleQueue[XidEvent] = queue.SimpleQueue()
        self._parser = LineParser()
        self._stop = stop
        self._wake = wake
        self._clock = clock
        self._thread = threading.Thread(target=self._watch, name="kernel-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the watcher to end (once ``stop`` is set)."""
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def drain(self) -> list[XidEvent]:
        """The queued events, oldest first; the queue is left empty."""
        items = []
        with contextlib.suppress(queue.Empty):
            while True:
                items.append(self._events.get_nowait())
        return items

    def requeue(self, events: list[XidEvent]) -> None:
        """Put back drained events whose report was not spooled: judged again next tick."""
        for event in events:
            self._events.put(event)

    def spooled(self, count: int) -> None:
        """The report of the ``count`` events drained last is spooled: read past them."""
        self._cursor.spooled(count)
        self._cursor.commit()

    def commit(self) -> None:
        """Save the cursor if it moved (see :meth:`CursorKeeper.commit`)."""
        self._cursor.commit()

    def _watch(self) -> None:
        for line in follow_forever(self._source, self._stop, after=self._resume_from):
            event = None if line.text is None else self._parser.feed(line.text, self._clock())
            self._cursor.read(line, event=event is not None)  # before the tick can drain it
            if event is None:
                continue
            log.info("XID %d on %s: %s", event.xid, event.pci_bus_id, event.message)
            self._events.put(event)
            self._wake()


def cursor_path(cfg: AgentConfig, node: str) -> Path:
    """``kernel_log.cursor_file``, by default ``kernlog.cursor`` in the spool directory."""
    if cfg.kernel_log.cursor_file:
        return expand(cfg.kernel_log.cursor_file, node)
    return expand(cfg.spool_dir, node) / "kernlog.cursor"
