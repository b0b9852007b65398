"""The production kernel-log path on this machine's real kernel: an XID line written to
/dev/kmsg (as `hpresil inject` does on a real node) is read back by the agent's kmsg
source. The line names an impossible PCI id and says it is a self-test."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime

import pytest

from hpresil.config import KernelLogConfig
from hpresil.kernlog.inject import write_line, xid_line
from hpresil.kernlog.parse import parse_line
from hpresil.kernlog.sources import open_source
from hpresil.vocab import XidEvent
from tests.kernlogtext import texts


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.access("/dev/kmsg", os.R_OK | os.W_OK),
    reason="needs root and a readable, writable /dev/kmsg",
)
def test_xid_written_to_dev_kmsg_is_read_back_by_the_kmsg_source() -> None:
    cfg = KernelLogConfig(source="kmsg")
    stop = threading.Event()
    found: list[XidEvent] = []

    def follow() -> None:
        for line in texts(open_source(cfg, "self"), stop):
            event = parse_line(line, datetime.now(UTC))
            if event is not None and event.pci_bus_id == "0000:ff:1f":
                found.append(event)
                stop.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    line = xid_line(48, "0000:ff:1f", message="hpresil kmsg self-test, not a real fault")
    try:
        # The source starts at the end of the ring buffer: write until it is following.
        for _ in range(50):
            write_line(cfg, "self", line)
            reader.join(0.2)
            if found:
                break
    finally:
        stop.set()
        reader.join(5)
    assert found, "the XID written to /dev/kmsg never came back through the kmsg source"
    assert found[0].xid == 48 and "self-test" in found[0].message
