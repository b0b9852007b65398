"""What the fault-injection tests share: inject an XID 79, wait for the node to be
quiet, and the invariant each of them checks (one incident, one drain, done, nothing
left in the agent's spool), with the lab's logs printed when it fails."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from lab import Lab
from scenario import api_get, hpresil, incidents_after, newest_incident_id, node_state, wait_for


def open_incidents(lab: Lab, node: str) -> list[dict[str, Any]]:
    found: Any = api_get(lab, f"/v1/incidents?status=open&node={node}")
    return list(found)


def drains(lab: Lab, incident_id: int) -> list[dict[str, Any]]:
    detail: Any = api_get(lab, f"/v1/incidents/{incident_id}")
    return [a for a in detail["actions"] if a["kind"] == "drain"]


def spooled(lab: Lab, node: str) -> list[Path]:
    return sorted(lab.spool_dir(node).glob("*.json"))


def inject_xid79(lab: Lab, node: str) -> None:
    hpresil(lab, "inject", "xid", "79", "--gpu", "2", "--node", node, env=lab.node_env(node))


def quiet(lab: Lab, node: str) -> int:
    """Wait until ``node`` has no open incident left by an earlier test; answer the
    newest incident id, the mark after which this test's incidents count."""
    wait_for(f"no open incident on {node}", lambda: not open_incidents(lab, node), 30, 0.5)
    return newest_incident_id(lab)


def drained_once(lab: Lab, node: str, before: int) -> None:
    """The invariant: one incident since ``before``, one drain, done, in Slurm with
    hpresil's reason; every report the agent holds delivered."""
    found = wait_for("the incident", lambda: incidents_after(lab, node, before), 30, 0.2)
    assert isinstance(found, list)
    incident_id = found[0]["id"]

    def drain_done() -> bool:
        return any(a["status"] == "done" for a in drains(lab, incident_id))

    wait_for("the drain to be done", drain_done, 30, 0.2)
    wait_for("the drain in Slurm", lambda: "DRAIN" in node_state(lab, node)[0], 30, 0.2)
    wait_for("the agent's spool to empty", lambda: not spooled(lab, node), 30, 0.2)
    (incident,) = incidents_after(lab, node, before)
    assert incident["xid"] == 79
    assert incident["findings"] == 1  # the one report stored once, not once per retry
    (drain,) = drains(lab, incident_id)
    assert drain["target"] == node and drain["status"] == "done"
    assert drain["outcome"] in ("drained", "already_ours")
    assert node_state(lab, node)[1].startswith("hpresil:")


@contextmanager
def evidence(lab: Lab, node: str) -> Iterator[None]:
    """On failure, print what the lab's logs said (its root is deleted afterwards)."""
    try:
        yield
    except BaseException:
        for log in (lab.log_dir / "controller.log", lab.log_dir / f"agent.{node}.log"):
            text = log.read_text(errors="replace") if log.exists() else "(none)"
            print(f"===== {log.name}, its end =====\n{text[-6000:]}")
        print(f"===== spool of {node}: {[p.name for p in spooled(lab, node)]}")
        for extra in (lab.spool_dir(node) / "kernlog.cursor", lab.kmsg_file(node)):
            text = extra.read_text(errors="replace") if extra.exists() else "(none)"
            print(f"===== {extra.name}, its end =====\n{text[-1500:]}")
        print(f"===== alive: {[n for n in ('controller', f'agent.{node}') if lab._alive(n)]}")
        with suppress(OSError):
            print(f"===== incidents of {node}: {api_get(lab, f'/v1/incidents?node={node}')}")
        raise
