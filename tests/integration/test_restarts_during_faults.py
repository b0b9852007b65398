"""Restarts at the wrong moment (issue 9, "Nothing lost, nothing poisoned"): the
controller or an agent killed with SIGKILL around an XID 79, then started again. A
fault seen once ends in exactly one incident and one drain, whatever died when."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab import Lab
from scenario import (
    api_get,
    hpresil,
    incidents_after,
    newest_incident_id,
    node_state,
    wait_for,
)


def _open(lab: Lab, node: str) -> list[dict[str, Any]]:
    found: Any = api_get(lab, f"/v1/incidents?status=open&node={node}")
    return list(found)


def _drains(lab: Lab, incident_id: int) -> list[dict[str, Any]]:
    detail: Any = api_get(lab, f"/v1/incidents/{incident_id}")
    return [a for a in detail["actions"] if a["kind"] == "drain"]


def _spooled(lab: Lab, node: str) -> list[Path]:
    return sorted((lab.root / "spool" / node).glob("*.json"))


def _last_report_at(lab: Lab, node: str) -> datetime | None:
    nodes: Any = api_get(lab, "/v1/nodes")
    (view,) = [n for n in nodes if n["name"] == node]
    at = view["last_report_at"]
    return datetime.fromisoformat(at) if at else None


def _cursor_file(lab: Lab, node: str) -> Path:
    return lab.root / "spool" / node / "kernlog.cursor"


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


def _inject_xid79(lab: Lab, node: str) -> None:
    hpresil(lab, "inject", "xid", "79", "--gpu", "2", "--node", node, env=lab.node_env(node))


def _quiet(lab: Lab, node: str) -> int:
    """Wait until ``node`` has no open incident left by an earlier test; answer the
    newest incident id, the mark after which this test's incidents count."""
    wait_for(f"no open incident on {node}", lambda: not _open(lab, node), 30, 0.5)
    return newest_incident_id(lab)


def _drained_once(lab: Lab, node: str, before: int) -> None:
    """The invariant: one incident since ``before``, one drain, done, in Slurm with
    hpresil's reason; every report the agent holds delivered."""
    found = wait_for("the incident", lambda: incidents_after(lab, node, before), 30, 0.2)
    assert isinstance(found, list)
    incident_id = found[0]["id"]

    def drain_done() -> bool:
        return any(a["status"] == "done" for a in _drains(lab, incident_id))

    wait_for("the drain to be done", drain_done, 30, 0.2)
    wait_for("the drain in Slurm", lambda: "DRAIN" in node_state(lab, node)[0], 30, 0.2)
    wait_for("the agent's spool to empty", lambda: not _spooled(lab, node), 30, 0.2)
    (incident,) = incidents_after(lab, node, before)
    assert incident["xid"] == 79
    assert incident["findings"] == 1  # the one report stored once, not once per retry
    (drain,) = _drains(lab, incident_id)
    assert drain["target"] == node and drain["status"] == "done"
    assert drain["outcome"] in ("drained", "already_ours")
    assert node_state(lab, node)[1].startswith("hpresil:")


@contextmanager
def _evidence(lab: Lab, node: str) -> Iterator[None]:
    """On failure, print what the lab's logs said (its root is deleted afterwards)."""
    try:
        yield
    except BaseException:
        for log in (lab.log_dir / "controller.log", lab.log_dir / f"agent.{node}.log"):
            text = log.read_text(errors="replace") if log.exists() else "(none)"
            print(f"===== {log.name}, its end =====\n{text[-6000:]}")
        print(f"===== spool of {node}: {[p.name for p in _spooled(lab, node)]}")
        for extra in (_cursor_file(lab, node), lab.kmsg_file(node)):
            text = extra.read_text(errors="replace") if extra.exists() else "(none)"
            print(f"===== {extra.name}, its end =====\n{text[-1500:]}")
        print(f"===== alive: {[n for n in ('controller', f'agent.{node}') if lab._alive(n)]}")
        with suppress(OSError):
            print(f"===== incidents of {node}: {api_get(lab, f'/v1/incidents?node={node}')}")
        raise


def test_controller_killed_right_after_an_xid_drains_once(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node1"
    before = _quiet(lab, node)
    with _evidence(lab, node):
        _inject_xid79(lab, node)
        _kill_and_restart_controller(lab)  # before or while it handles the report
        _drained_once(lab, node, before)


def test_xid_written_while_the_agent_is_killed_is_judged_on_restart(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node4"
    before = _quiet(lab, node)
    with _evidence(lab, node):
        # a node's kernel log has lines before the fault, as every real one does: the
        # agent has read them and saved where it stopped
        with lab.kmsg_file(node).open("a") as f:
            f.write("[ 6000.000000] mlx5_core 0000:c1:00.0: Port module event: up\n")
        wait_for("the agent's cursor at the log's end", lambda: _cursor_at_end(lab, node), 30, 0.2)
        lab.stop_process(f"agent.{node}", signal.SIGKILL)
        _inject_xid79(lab, node)  # into the node's kernel-log file, nobody reading it
        assert incidents_after(lab, node, before) == []
        lab.start_agent(node)
        _drained_once(lab, node, before)


def test_agent_killed_after_reporting_an_xid_does_not_judge_it_again(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node2"
    before = _quiet(lab, node)
    with _evidence(lab, node):
        _inject_xid79(lab, node)
        _drained_once(lab, node, before)
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
        wait_for("the agent's spool to empty", lambda: not _spooled(lab, node), 30, 0.2)
        _drained_once(lab, node, before)
