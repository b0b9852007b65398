#!/usr/bin/env python3
"""Impostors on the lab: forged, replayed, tampered, stale and cross-node requests,
counted, against the real controller over HTTP.

The lab (scripts/lab.py: slurmctld, 4 slurmd, MUNGE, the controller and an agent per
node) is brought up fresh. Then, ``--rounds`` times each (100), an attacker who has
what a compromised node3 has (its key, its reports) or less tries to act for node2 or
on the fleet:

* ``forged``: an XID 79 report for node2 (seq 999999) signed with a made-up key;
* ``cross-node``: the same report signed with node3's real key;
* ``tampered``: a healthy report node2 signed, its body changed to the XID 79 after
  signing;
* ``replayed``: a healthy report node2 signed and the controller took, sent again
  byte for byte;
* ``stale``: node2's key, the signature an hour old;
* ``unsigned``: no credential at all;
* ``node drains another``, ``node resumes itself``, ``node resets a breaker``: node3's
  key on the operators' routes;
* ``not an operator``: a MUNGE credential made by ``nobody`` asking to drain node2,
  and the same credential sent again (``munge replayed``).

Beside them, the same number of ``genuine`` reports (node2's key, its own healthy
report), which must all be taken. Afterwards, from the ledger and Slurm: incidents
opened, nodes drained, node2's stored sequence number and the impostors' reports
stored (each report's id says whose it is), all of which must be zero (or
untouched). Prints the counts per attack and writes scripts/bench/results/impostors.json.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

from lab import Lab  # noqa: E402
from scenario import node_state, wait_agents  # noqa: E402

from hpresil.auth import MUNGE_SCHEME, MungePayload, NodeKey, node_key  # noqa: E402
from tests.unit.controller.fakes import report, xid79  # noqa: E402

VICTIM, ATTACKER = "node2", "node3"
Attempt = Callable[[httpx.Client], httpx.Response]


def body_of(*results: Any, seq: int = 0, kind: str = "imp") -> bytes:
    """A report of node2's; its id says whose (``imp-``: an impostor's, ``gen-``: node2's)."""
    rid = f"{kind}-{secrets.token_hex(8)}"
    return report(VICTIM, *results, report_id=rid, seq=seq).model_dump_json().encode()


def sign(key: NodeKey, method: str, target: str, body: bytes) -> dict[str, str]:
    return {
        "Authorization": key.authorization(method, target, body),
        "Content-Type": "application/json",
    }


class Attacks:
    def __init__(self, lab: Lab) -> None:
        token = (lab.root / "etc" / "token").read_text().strip()
        self.victim = NodeKey(VICTIM, node_key(token, VICTIM))
        self.attacker = NodeKey(ATTACKER, node_key(token, ATTACKER))
        self.forger = NodeKey(VICTIM, secrets.token_hex(32))
        self.stale = NodeKey(VICTIM, node_key(token, VICTIM), clock=lambda: time.time() - 3600)

    def table(self) -> dict[str, Attempt]:
        return {
            "forged": lambda c: self._report(c, self.forger, body_of(xid79(), seq=999999)),
            "cross-node": lambda c: self._report(c, self.attacker, body_of(xid79(), seq=999999)),
            "tampered": self._tampered,
            "replayed": self._replayed,
            "stale": lambda c: self._report(c, self.stale, body_of(xid79())),
            "unsigned": lambda c: c.post("/v1/reports", content=body_of(xid79())),
            "node drains another": lambda c: self._write(c, f"/v1/nodes/{VICTIM}/drain"),
            "node resumes itself": lambda c: self._write(c, f"/v1/nodes/{ATTACKER}/resume"),
            "node resets a breaker": lambda c: self._write(c, "/v1/breakers/gpu_lost_pcie/reset"),
        }

    def genuine(self, client: httpx.Client) -> httpx.Response:
        return self._report(client, self.victim, body_of(kind="gen"))

    def _report(self, client: httpx.Client, key: NodeKey, body: bytes) -> httpx.Response:
        return client.post(
            "/v1/reports", content=body, headers=sign(key, "POST", "/v1/reports", body)
        )

    def _tampered(self, client: httpx.Client) -> httpx.Response:
        headers = sign(self.victim, "POST", "/v1/reports", body_of(kind="gen"))
        return client.post("/v1/reports", content=body_of(xid79(), seq=999999), headers=headers)

    def _replayed(self, client: httpx.Client) -> httpx.Response:
        body = body_of(kind="gen")
        headers = sign(self.victim, "POST", "/v1/reports", body)
        first = client.post("/v1/reports", content=body, headers=headers)
        if first.status_code != 200:
            raise SystemExit(f"the genuine report to replay was refused: {first.text}")
        return client.post("/v1/reports", content=body, headers=headers)

    def _write(self, client: httpx.Client, path: str) -> httpx.Response:
        body = b'{"reason": "impostor"}' if path.endswith("/drain") else b""
        return client.post(path, content=body, headers=sign(self.attacker, "POST", path, body))


def munge_as_nobody(client: httpx.Client, rounds: int) -> dict[str, Counter[int]]:
    """A drain of node2 asked by ``nobody`` (not an operator), then the same credential
    again (a replay)."""
    path, body = f"/v1/nodes/{VICTIM}/drain", b'{"reason": "impostor"}'
    payload = MungePayload.of("POST", path, body).text()
    out: dict[str, Counter[int]] = {"not an operator": Counter(), "munge replayed": Counter()}
    for _ in range(rounds):
        cred = subprocess.run(
            ["runuser", "-u", "nobody", "--", "munge", "-s", payload],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        headers = {"Authorization": f"{MUNGE_SCHEME} {cred}", "Content-Type": "application/json"}
        out["not an operator"][client.post(path, content=body, headers=headers).status_code] += 1
        out["munge replayed"][client.post(path, content=body, headers=headers).status_code] += 1
    return out


def stored(lab: Lab) -> dict[str, Any]:
    """What the ledger holds: reports by whose, incidents, node2's sequence number."""
    with sqlite3.connect(f"file:{lab.root}/db/hpresil.db?mode=ro", uri=True) as db:
        count = "SELECT count(*) FROM reports WHERE report_id LIKE ?"
        impostors = db.execute(count, ("imp-%",)).fetchone()[0]
        genuine = db.execute(count, ("gen-%",)).fetchone()[0]
        incidents = db.execute("SELECT count(*) FROM incidents").fetchone()[0]
        seq = db.execute("SELECT last_seq FROM nodes WHERE name = ?", (VICTIM,)).fetchone()[0]
    return {"impostor": impostors, "genuine": genuine, "incidents": incidents, "seq": seq}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    lab = Lab()
    try:
        lab.down()
        lab.reset_state()
        lab.up(hpresil=True)
        wait_agents(lab)
        before = stored(lab)
        attacks = Attacks(lab)
        counts: dict[str, Counter[int]] = {name: Counter() for name in attacks.table()}
        genuine: Counter[int] = Counter()
        url = f"http://127.0.0.1:{lab.controller_port}"
        with httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(args.rounds):
                genuine[attacks.genuine(client).status_code] += 1
                for name, attempt in attacks.table().items():
                    counts[name][attempt(client).status_code] += 1
            counts.update(munge_as_nobody(client, args.rounds))
        time.sleep(2)  # anything queued would be done by now
        after = stored(lab)
        drained = [n for n in lab.node_names if "DRAIN" in node_state(lab, n)[0]]
    finally:
        lab.down()
    sent = sum(sum(c.values()) for c in counts.values())
    accepted = sum(c.get(200, 0) for c in counts.values())
    result = {
        "rounds": args.rounds,
        "attacks": {name: dict(sorted(c.items())) for name, c in counts.items()},
        "genuine": dict(genuine),
        "impostor_requests": sent,
        "impostor_requests_accepted": accepted,
        "incidents_opened": after["incidents"] - before["incidents"],
        "nodes_drained": drained,
        "victim_last_seq": after["seq"],
        "impostor_reports_stored": after["impostor"],
        # the genuine reports, and the first send of each replayed one
        "genuine_reports_stored": after["genuine"],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    for name, c in counts.items():
        print(
            f"{name:22s} {sum(c.values()):4d} sent: "
            + ", ".join(f"{n} x {code}" for code, n in sorted(c.items()))
        )
    print(
        f"genuine {dict(genuine)}; impostor requests accepted: {accepted} of {sent}; incidents "
        f"opened: {result['incidents_opened']}; nodes drained: {drained or 'none'}; "
        f"{VICTIM}'s last seq: {after['seq']}; impostor reports stored: {after['impostor']}; "
        f"genuine: {after['genuine']}"
    )
    out = HERE / "results" / "impostors.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"raw figures: {out.relative_to(REPO)}")
    clean = accepted == 0 and not drained and result["incidents_opened"] == 0
    return 0 if clean and after["impostor"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
