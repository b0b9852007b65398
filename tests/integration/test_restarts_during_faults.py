"""Restarts at the wrong moment (issue 9, "Nothing lost, nothing poisoned"): the
controller or an agent killed with SIGKILL around an XID 79, then started again. A
fault seen once ends in exactly one incident and one drain, whatever died when."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab import Lab
from scenario import api_get, incidents_after, wait_for

from tests.integration.faultkit import drained_once, evidence, inject_xid79, quiet, spooled


def _last_report_at(lab: Lab, node: str) -> datetime | None:
    nodes: Any = api_get(lab, "/v1/nodes")
    (view,) = [n for n in nodes if n["name"] == node]
    at = view["last_report_at"]
    return datetime.fromisoformat(at) if at else None


def _cursor_file(lab: Lab, node: str) -> Path:
    return lab.spool_dir(node) / "kernlog.cursor"


def _cursor_at_end(lab: Lab, node: str) -> bool:
    """Whether the agent's saved kernel-log cursor is at the end of the node's file."""
    try:
        saved = json.loads(_cursor_file(lab, node).read_text())
        return bool(saved["cursor"]["offset"] == lab.kmsg_file(node).stat().st_size)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _kill_and_restart_controller(lab: Lab) -> None:
    """SIGKILL, then a new controller (``stop_process`` waits for the killed one's
    socket to close: its threads outlive the leader)."""
    lab.stop_process("controller", signal.SIGKILL)
    lab.start_controller()


def test_controller_killed_right_after_an_xid_drains_once(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node1"
    before = quiet(lab, node)
    with evidence(lab, node):
        inject_xid79(lab, node)
        _kill_and_restart_controller(lab)  # before or while it handles the report
        drained_once(lab, node, before)


def test_xid_written_while_the_agent_is_killed_is_judged_on_restart(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node4"
    before = quiet(lab, node)
    with evidence(lab, node):
        # a node's kernel log has lines before the fault, as every real one does: the
        # agent has read them and saved where it stopped
        with lab.kmsg_file(node).open("a") as f:
            f.write("[ 6000.000000] mlx5_core 0000:c1:00.0: Port module event: up\n")
        wait_for("the agent's cursor at the log's end", lambda: _cursor_at_end(lab, node), 30, 0.2)
        lab.stop_process(f"agent.{node}", signal.SIGKILL)
        inject_xid79(lab, node)  # into the node's kernel-log file, nobody reading it
        assert incidents_after(lab, node, before) == []
        lab.start_agent(node)
        drained_once(lab, node, before)


def test_agent_killed_after_reporting_an_xid_does_not_judge_it_again(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node2"
    before = quiet(lab, node)
    with evidence(lab, node):
        inject_xid79(lab, node)
        drained_once(lab, node, before)
        lab.stop_process(f"agent.{node}", signal.SIGKILL)
        restarted = datetime.now(UTC)
        lab.start_agent(node)

        def reported_since() -> bool:
            at = _last_report_at(lab, node)
            return at is not None and at > restarted

        wait_for("a report from the restarted agent", reported_since, 30, 0.2)
        first = _last_report_at(lab, node)
        assert first is not None

        def reported_again() -> bool:  # its first ticks are over: it had its chance
            at = _last_report_at(lab, node)
            return at is not None and at > first

        wait_for("another report from it", reported_again, 30, 0.2)
        wait_for("the agent's spool to empty", lambda: not spooled(lab, node), 30, 0.2)
        drained_once(lab, node, before)
