"""Reports the disk would not take, held in memory until it does.

A full, read-only or failing spool disk must not cost a drain: the report that
could not be written is kept here (newest ``limit``, the oldest dropped and
counted) and the spool delivers it like a spooled file, in sequence order. Once a
write succeeds again the spool writes these to disk. They are lost if the agent
stops meanwhile; the warning says so, once per episode.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from hpresil.vocab import Report

log = logging.getLogger(__name__)

MAX_HELD = 1_000


class Held:
    """File name -> report, for names the spool could not write (not thread-safe:
    the spool's lock guards it)."""

    def __init__(self, limit: int = MAX_HELD) -> None:
        self.limit = limit
        self._reports: OrderedDict[str, Report] = OrderedDict()
        self._failing: str | None = None  # why the disk refuses, while it does
        self.dropped = 0

    def __contains__(self, name: object) -> bool:
        return name in self._reports

    def __len__(self) -> int:
        return len(self._reports)

    def names(self) -> list[str]:
        return list(self._reports)

    def get(self, name: str) -> Report | None:
        return self._reports.get(name)

    def pop(self, name: str) -> Report | None:
        return self._reports.pop(name, None)

    def hold(self, name: str, report: Report, where: str, exc: OSError) -> None:
        """Keep ``report``; warn when the disk starts refusing."""
        why = exc.strerror or str(exc)
        if self._failing is None:
            log.warning(
                "cannot write %s: %s; holding reports in memory (newest %d) until it can: "
                "they are lost if the agent stops",
                where,
                why,
                self.limit,
            )
        self._failing = why
        self._reports[name] = report
        while len(self._reports) > self.limit:
            self._reports.popitem(last=False)
            self.dropped += 1

    def writable(self) -> list[tuple[str, Report]]:
        """The disk took a write: what is held, to be written now (oldest first)."""
        if self._failing is not None:
            log.info("spool writable again; writing %d held reports", len(self._reports))
            self._failing = None
        return list(self._reports.items())
