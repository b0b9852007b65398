"""A full disk under a fault (issue 9, "fill the disk"), on the lab: the agent's
spool disk or the controller's database disk filled to the last byte, then an
XID 79. The fault still ends in exactly one incident and one drain: at once when
only the agent's disk is full (the report is held in memory and delivered), once
there is room again when the database's disk is full (the agent keeps the report
the controller answered 503 and sends it again)."""

from __future__ import annotations

import signal
import time

from lab import Lab
from scenario import incidents_after, wait_for

from tests.diskfull import moved_to_a_small_disk
from tests.integration.faultkit import drained_once, evidence, inject_xid79, quiet, spooled


def test_an_xid_on_a_node_whose_spool_disk_is_full_still_drains(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node3"
    before = quiet(lab, node)
    agent = f"agent.{node}"
    with (
        evidence(lab, node),
        moved_to_a_small_disk(
            lab.spool_dir(node), lambda: lab.stop_process(agent), lambda: lab.start_agent(node)
        ) as disk,
    ):
        disk.fill()
        inject_xid79(lab, node)
        drained_once(lab, node, before)
        log = (lab.log_dir / f"{agent}.log").read_text(errors="replace")
        assert "holding reports in memory" in log  # it was the memory that carried it


def test_an_xid_while_the_database_disk_is_full_drains_once_there_is_room(
    clean_lab: Lab,
) -> None:
    lab, node = clean_lab, "node2"
    before = quiet(lab, node)
    with (
        evidence(lab, node),
        moved_to_a_small_disk(
            lab.db_dir,
            lambda: lab.stop_process("controller", signal.SIGTERM),
            lab.start_controller,
        ) as disk,
    ):
        disk.fill()
        inject_xid79(lab, node)
        wait_for("the report kept by the agent", lambda: spooled(lab, node), 30, 0.2)
        time.sleep(3)  # the agent tries again meanwhile; the controller still has no room
        assert incidents_after(lab, node, before) == []
        assert spooled(lab, node)
        log = (lab.log_dir / "controller.log").read_text(errors="replace")
        assert "database disk full" in log
        disk.free()
        drained_once(lab, node, before)
