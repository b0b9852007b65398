#!/usr/bin/env python3
"""What hpresil survives: faults injected while a part of the loop is down.

Each round picks a node in service and a part to kill at random: ``slurmctld``, the
``controller`` or the node's ``agent`` (SIGKILL), or ``none``; kills it, injects XID 79
on the node (``hpresil inject xid``: a real kernel-log line, read by the agent through
its kernel-log cursor if the agent is down), waits a random 0-3 s, starts the part
again (the recovery: from the moment it is started, or the injection when nothing was
killed), and waits for the node to be drained in Slurm. Then it counts,
for the node: incidents opened since the injection (one expected) and drain actions
(one expected); and returns the node to service (``hpresil resume``). At the end it
counts what the agents could not deliver (reports still spooled or set aside).

Prints faults injected, incidents opened, drains done, duplicates, reports lost and
the time from the recovery to the drain (p50/p95); writes
``scripts/bench/results/faults.json``. Goal: every fault drained, no duplicate, no
report lost, every drain within 10 s of the recovery.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from lab import Lab  # noqa: E402
from scenario import (  # noqa: E402
    ScenarioError,
    api_get,
    hpresil,
    node_state,
    wait_agents,
    wait_for,
)

PARTS = ("slurmctld", "controller", "agent", "none")


def kill(lab: Lab, part: str, node: str) -> None:
    if part == "slurmctld":
        lab.stop_process("slurmctld", signal.SIGKILL)
    elif part == "controller":
        lab.stop_process("controller", signal.SIGKILL)
    elif part == "agent":
        lab.stop_process(f"agent.{node}", signal.SIGKILL)


def recover(lab: Lab, part: str, node: str) -> None:
    if part == "slurmctld":
        lab.up()
    elif part == "controller":
        lab.start_controller()
    elif part == "agent":
        lab.start_agent(node)


def incidents_since(lab: Lab, node: str, t0: float) -> list[dict[str, Any]]:
    found: Any = api_get(lab, f"/v1/incidents?node={node}")
    return [i for i in found if _epoch(i["detected_at"]) >= t0 - 1]


def drains(lab: Lab, incidents: list[dict[str, Any]]) -> int:
    count = 0
    for incident in incidents:
        detail: Any = api_get(lab, f"/v1/incidents/{incident['id']}")
        count += sum(1 for a in detail["actions"] if a["kind"] == "drain" and a["status"] == "done")
    return count


def process(part: str, node: str) -> str | None:
    return {"agent": f"agent.{node}", "none": None}.get(part, part)


def one_round(lab: Lab, node: str, part: str, rng: random.Random) -> dict[str, Any]:
    kill(lab, part, node)
    name = process(part, node)
    if name is not None and lab._alive(name):
        raise ScenarioError(f"{name} survived SIGKILL")
    t0 = time.time()
    argv = ["inject", "xid", "79", "--gpu", str(rng.randrange(8)), "--node", node]
    hpresil(lab, *argv, env=lab.node_env(node))
    if part == "none":  # nothing to recover: from the line entering the kernel log
        recovered = lab.kmsg_file(node).stat().st_mtime
    else:
        time.sleep(rng.uniform(0, 3))
        recovered = time.time()  # the restart begins
    recover(lab, part, node)
    drained = None
    try:
        wait_for(
            "the drain",
            lambda: (
                "DRAIN" in node_state(lab, node)[0]
                and node_state(lab, node)[1].startswith("hpresil:")
            ),
            120,
            0.1,
        )
        drained = time.time()
    except ScenarioError:
        pass
    wait_for("the controller", lambda: _answers(lab), 60, 0.5)
    time.sleep(2)  # anything late (a second incident or drain) would show by now
    opened = incidents_since(lab, node, t0)
    row = {
        "node": node,
        "killed": part,
        "drained": drained is not None,
        "recovery_to_drain_s": None if drained is None else round(max(0.0, drained - recovered), 3),
        "incidents": len(opened),
        "drains": drains(lab, opened),
    }
    hpresil(lab, "resume", node)
    lab.heal(node)
    wait_for(
        "the node back in service",
        lambda: "DRAIN" not in node_state(lab, node)[0],
        60,
        0.5,
    )
    return row


def _answers(lab: Lab) -> bool:
    try:
        api_get(lab, "/v1/nodes")
    except OSError:
        return False
    return True


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def undelivered(lab: Lab) -> int:
    spool = lab.root / "spool"
    return sum(
        1
        for node in lab.node_names
        for folder in (spool / node, spool / node / "rejected")
        for p in folder.glob("*.json")
    )


def pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=20)
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    lab = Lab()
    rows: list[dict[str, Any]] = []
    try:
        lab.down()
        lab.reset_state()
        lab.up(hpresil=True)
        wait_agents(lab)
        for i in range(args.faults):
            node = lab.node_names[i % lab.nodes]
            part = PARTS[i % len(PARTS)] if i < len(PARTS) else rng.choice(PARTS)
            row = one_round(lab, node, part, rng)
            rows.append(row)
            print(
                f"fault {i + 1:2d} on {node}, {part:10s} killed: "
                f"drained={row['drained']} after recovery {row['recovery_to_drain_s']} s, "
                f"incidents {row['incidents']}, drains {row['drains']}",
                flush=True,
            )
        wait_for("every spool delivered", lambda: undelivered(lab) == 0, 30, 0.5)
    except ScenarioError as exc:
        print(f"faults: {exc}", file=sys.stderr)
    finally:
        lost = undelivered(lab)
        lab.down()
    times = [r["recovery_to_drain_s"] for r in rows if r["recovery_to_drain_s"] is not None]
    result = {
        "faults": len(rows),
        "drained": sum(r["drained"] for r in rows),
        "incidents": sum(r["incidents"] for r in rows),
        "drains": sum(r["drains"] for r in rows),
        "duplicates": sum(max(0, r["incidents"] - 1) + max(0, r["drains"] - 1) for r in rows),
        "reports_lost": lost,
        "recovery_to_drain_s": {
            "p50": round(pct(times, 0.5), 3) if times else None,
            "p95": round(pct(times, 0.95), 3) if times else None,
            "max": max(times) if times else None,
        },
        "recovery_to_drain_p50_by_part": {
            part: round(pct(t, 0.5), 3)
            for part in PARTS
            if (
                t := [
                    r["recovery_to_drain_s"] for r in rows if r["killed"] == part and r["drained"]
                ]
            )
        },
        "rounds": rows,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    r = result
    print(
        f"\n{r['faults']} faults: {r['drained']} drained, {r['incidents']} incidents, "
        f"{r['drains']} drains, {r['duplicates']} duplicates, {r['reports_lost']} reports lost"
    )
    rd = r["recovery_to_drain_s"]
    print(f"recovery -> drain: p50 {rd['p50']} s, p95 {rd['p95']} s, max {rd['max']} s")
    print("p50 by what was killed:", r["recovery_to_drain_p50_by_part"])
    out = HERE / "results" / "faults.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"raw figures: {out.relative_to(HERE.parent.parent)}")
    ok = r["faults"] == args.faults and r["drained"] == r["faults"] and not r["duplicates"]
    return 0 if ok and not lost else 1


if __name__ == "__main__":
    sys.exit(main())
