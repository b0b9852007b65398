"""Kernel-log sources for tests: a source's text only, from its end."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from hpresil.kernlog.sources import KernelLogSource


def texts(source: KernelLogSource, stop: threading.Event) -> Iterator[str]:
    """The text of the lines ``source`` yields from its end (no cursor) until ``stop``
    is set; the positions without text are left out. Closing this closes the source."""
    with contextlib.closing(source.lines(stop, None)) as lines:
        for line in lines:
            if line.text is not None:
                yield line.text
